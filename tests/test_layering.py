"""The layering, written as a rule this test checks (AST: every import, also inside functions).

    contracts/   pure: the standard library's computing modules and other contracts, nothing else
    workflows/   deterministic: nothing they import, directly or through any project module,
                 does I/O (no database, HTTP, logging library, Temporal client or worker)
    providers/   provider clients (HTTP), used by activities and the API's webhooks
    activities/  I/O for the journeys; never imports workflows, api or the CLI
    api/         the HTTP edge; never imports activities (their internals); it may name the
                 (pure) workflow classes for typed calls: handle.execute_update(Journey.cancel, ...)
    core/        shared infrastructure; never imports api, activities or the CLI
    what the journeys run (workflows/, what the sandbox passes through, what they import):
                 no clock, randomness or I/O, and no state shared between journeys

A violation names the file, the line and the import, so the fix is obvious.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ("contracts", "workflows", "providers", "activities", "api", "core", "models", "conversations", "bench")
TOP_MODULES = ("cli", "worker")

# Standard-library modules that talk to the world, and the I/O libraries we depend on.
STDLIB_IO = frozenset(
    {"asyncio", "socket", "ssl", "smtplib", "http", "urllib", "subprocess", "os", "shutil", "sqlite3", "logging"}
    | {"threading", "multiprocessing", "tempfile", "io", "pathlib", "select", "signal"}
)
# Contracts are data: not even clocks or randomness (workflows get those from `workflow.*`).
PURE_STDLIB = frozenset(sys.stdlib_module_names) - STDLIB_IO - {"random", "time", "uuid", "secrets"}
IO_LIBRARIES = frozenset(
    {"sqlmodel", "sqlalchemy", "alembic", "psycopg", "aiosqlite", "httpx", "fastapi", "starlette", "uvicorn"}
    | {"structlog", "typer", "openpyxl", "jinja2", "aiosmtpd", "prometheus_client", "opentelemetry"}
    | {"temporalio.client", "temporalio.worker", "temporalio.testing", "temporalio.service", "temporalio.runtime"}
    | (STDLIB_IO - {"asyncio"})  # asyncio: the workflow's own deterministic loop (locks, gather)
    | {"providers", "activities", "api", "conversations", "cli", "worker"}
)


@dataclass(frozen=True)
class Rule:
    package: str
    allowed: frozenset[str] = frozenset()  # direct imports: an allow-list (empty: anything not forbidden)
    forbidden: frozenset[str] = frozenset()  # direct imports
    pure: bool = False  # transitively: no project module it imports may import an I/O library
    known: frozenset[str] = frozenset()  # "file:import" leaks with an owner, to be removed


RULES = [
    # Contracts may name their activity stubs (temporalio.activity), nothing of the client/worker.
    Rule("contracts", allowed=PURE_STDLIB | {"contracts", "temporalio"}, forbidden=IO_LIBRARIES, pure=True),
    Rule("workflows", forbidden=IO_LIBRARIES, pure=True),
    Rule("providers", forbidden=frozenset({"activities", "api", "workflows", "conversations", "cli", "worker"})),
    Rule("activities", forbidden=frozenset({"workflows", "api", "cli", "worker"})),
    Rule("api", forbidden=frozenset({"activities", "cli", "worker"})),
    # Domain services (inbound routing, questions, staff messages, the delivery walk): used by
    # the API and the activities, never the other way round.
    Rule("conversations", forbidden=frozenset({"activities", "api", "workflows", "cli", "worker"})),
    Rule("core", forbidden=frozenset({"api", "activities", "cli", "worker"})),
]


def _matches(name: str, prefixes: frozenset[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
            # `from pkg import module` imports that project module too
            out += [
                (node.lineno, f"{node.module}.{a.name}")
                for a in node.names
                if _module_file(ROOT, f"{node.module}.{a.name}")
            ]
    return out


def _module_file(root: Path, name: str) -> Path | None:
    """The project file behind a dotted name (None: not ours, or not a module)."""
    if name.split(".")[0] not in (*PROJECT, *TOP_MODULES):
        return None
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@cache
def _io_path(root: Path, path: Path) -> tuple[str, ...] | None:
    """A chain of imports from `path` to an I/O library, or None when there is none."""
    seen: set[Path] = set()

    def walk(p: Path, chain: tuple[str, ...]) -> tuple[str, ...] | None:
        if p in seen:
            return None
        seen.add(p)
        for _, name in _imports(p):
            if _matches(name, IO_LIBRARIES):
                return (*chain, name)
            sub = _module_file(root, name)
            if sub is not None and (found := walk(sub, (*chain, name))):
                return found
        return None

    return walk(path, ())


def violations(rule: Rule, root: Path = ROOT) -> list[str]:
    found = []
    for path in sorted((root / rule.package).rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        for line, name in _imports(path):
            bad = (rule.allowed and not _matches(name, rule.allowed)) or _matches(name, rule.forbidden)
            if bad and f"{rel}:{name}" not in rule.known:
                found.append(f"{rel}:{line} imports {name}")
            if rule.pure and (sub := _module_file(root, name)) and (chain := _io_path(root, sub)):
                found.append(f"{rel}:{line} imports {name}, which reaches I/O: {' -> '.join((name, *chain))}")
    return found


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.package)
def test_layer_imports(rule: Rule) -> None:
    assert violations(rule) == []


# What the journeys run: every module under workflows/, the modules of ours passed through the
# sandbox when it is on (core.temporal.workflow_runner), and every project module they import.
# The journeys run unsandboxed by default, and a module passed through the sandbox is not
# re-imported per journey, so nothing at run time catches a clock, randomness or I/O in them,
# or state one journey leaves for the next: this rule does, before the code runs. Time, ids and
# randomness come from `workflow.now()`, `workflow.uuid4()` and `workflow.random()`; asyncio is
# the journey's own deterministic loop (locks, gather, wait_for), and `uuid.uuid5` is a hash.
NOT_IN_JOURNEYS = IO_LIBRARIES | {"random", "time", "secrets"}
CLOCK_METHODS = frozenset({"now", "utcnow", "today", "fromtimestamp"})  # datetime.now(), date.today()...
RANDOM_CALLS = frozenset({"uuid1", "uuid4", "urandom", "getrandbits"})
LOOP_CALLS = frozenset({"get_event_loop", "get_running_loop", "new_event_loop", "to_thread", "run_in_executor"})
IO_FUNCTIONS = frozenset({"open", "input", "print", "breakpoint"})
MUTABLE_FACTORIES = frozenset({"list", "dict", "set", "bytearray", "defaultdict", "deque", "OrderedDict", "Counter"})
MUTABLE_DISPLAYS = (ast.List, ast.Dict, ast.Set, ast.ListComp, ast.DictComp, ast.SetComp)


def journey_files(modules: set[str], root: Path = ROOT) -> dict[str, Path]:
    """Our files under the given names, and every project file they import."""
    files: dict[str, Path] = {}
    todo = sorted(modules)
    while todo:
        name = todo.pop()
        base = root.joinpath(*name.split("."))
        paths = sorted(base.rglob("*.py")) if base.is_dir() else [base.with_suffix(".py")]
        for path in paths:
            rel = path.relative_to(root).as_posix()
            if rel in files or not path.is_file():
                continue
            files[rel] = path
            todo += [n for _, n in _imports(path) if _module_file(root, n)]
    return files


def _mutable(value: ast.expr | None) -> bool:
    if isinstance(value, MUTABLE_DISPLAYS):
        return True
    if isinstance(value, ast.Call):
        f = value.func
        return (isinstance(f, ast.Name) and f.id in MUTABLE_FACTORIES) or (
            isinstance(f, ast.Attribute) and f.attr in MUTABLE_FACTORIES
        )
    return False


def _shared_state(rel: str, tree: ast.Module) -> list[str]:
    """A mutable value bound at module or class level (every journey in the process shares it),
    or a `global` statement."""
    found = []
    scopes: list[ast.Module | ast.ClassDef] = [tree, *(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef))]
    for scope in scopes:
        for node in scope.body:
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and _mutable(node.value):
                target = node.targets[0] if isinstance(node, ast.Assign) else node.target
                if isinstance(target, ast.Name) and target.id == "__all__":
                    continue  # read by `import *` only
                found.append(f"{rel}:{node.lineno} binds a mutable {ast.unparse(target)} every journey shares")
    found += [f"{rel}:{n.lineno} writes a global" for n in ast.walk(tree) if isinstance(n, ast.Global)]
    return found


def journey_violations(modules: set[str], root: Path = ROOT) -> list[str]:
    found = []
    for rel, path in journey_files(modules, root).items():
        found += [f"{rel}:{line} imports {name}" for line, name in _imports(path) if _matches(name, NOT_IN_JOURNEYS)]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        # A module's `if __name__ == "__main__":` block runs as a script, never in a journey.
        tree.body = [n for n in tree.body if not (isinstance(n, ast.If) and "__main__" in ast.unparse(n.test))]
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            if isinstance(f, ast.Attribute):
                if isinstance(f.value, ast.Name) and f.value.id == "workflow":
                    continue  # workflow.now(), workflow.uuid4(), workflow.random(): the journey's own
                if f.attr in CLOCK_METHODS | RANDOM_CALLS | LOOP_CALLS:
                    found.append(f"{rel}:{node.lineno} calls .{f.attr}()")
            elif isinstance(f, ast.Name) and f.id in IO_FUNCTIONS | RANDOM_CALLS | LOOP_CALLS:
                found.append(f"{rel}:{node.lineno} calls {f.id}()")
        found += _shared_state(rel, tree)
    return found


def journey_modules() -> set[str]:
    from temporalio.worker.workflow_sandbox import SandboxRestrictions

    from core.temporal import workflow_runner

    sandboxed = workflow_runner(sandbox=True)
    return {"workflows"} | (
        sandboxed.restrictions.passthrough_modules - SandboxRestrictions.default.passthrough_modules
    )


def test_what_the_journeys_run_reads_no_clock_or_randomness_does_no_io_and_shares_no_state() -> None:
    modules = journey_modules()
    assert {"workflows", "contracts", "workflows.planner"} <= modules
    files = journey_files(modules)
    assert {"models/quiet_hours.py", "contracts/common.py", "workflows/appointment.py"} <= set(files)
    assert journey_violations(modules) == []


def test_the_journey_rule_catches_clocks_randomness_io_and_shared_state(tmp_path: Path) -> None:
    (tmp_path / "workflows").mkdir()
    (tmp_path / "workflows" / "planner.py").write_text(
        "import asyncio\nimport uuid\nfrom datetime import datetime, time\nfrom temporalio import workflow\n"
        "from models.hours import h\n\nSEEN = []\nKINDS = ('a', 'b')\n\n"
        "class Journey:\n    pending: dict[str, int] = {}\n\n"
        "def f():\n    global KINDS\n    workflow.now(), workflow.uuid4(), uuid.uuid5(uuid.NAMESPACE_URL, 'x')\n"
        "    asyncio.get_running_loop()\n    return datetime.now(), time(8), uuid.uuid4()\n"
    )
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "hours.py").write_text(
        "import random\nimport time\n\ndef h():\n    print('x')\n    return open('x')\n\n"
        "__all__ = ['h']\n\nif __name__ == '__main__':\n    print(h())\n"  # neither is a journey's
    )
    assert sorted(journey_violations({"workflows"}, tmp_path)) == sorted(
        [
            "workflows/planner.py:7 binds a mutable SEEN every journey shares",
            "workflows/planner.py:11 binds a mutable pending every journey shares",
            "workflows/planner.py:14 writes a global",
            "workflows/planner.py:16 calls .get_running_loop()",
            "workflows/planner.py:17 calls .now()",
            "workflows/planner.py:17 calls .uuid4()",
            "models/hours.py:1 imports random",
            "models/hours.py:2 imports time",
            "models/hours.py:5 calls print()",
            "models/hours.py:6 calls open()",
        ]
    )


def test_the_rule_catches_leaks(tmp_path: Path) -> None:
    """The checker itself: a direct I/O import, a client import in a workflow, and a pure-looking
    module that passes sqlmodel through, are each reported with their place."""
    (tmp_path / "contracts").mkdir()
    (tmp_path / "contracts" / "leak.py").write_text("from dataclasses import dataclass\n\ndef f():\n    import httpx\n")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "__init__.py").write_text("")
    (tmp_path / "models" / "invoice.py").write_text("import enum\nfrom sqlmodel import SQLModel\n")
    (tmp_path / "workflows").mkdir()
    (tmp_path / "workflows" / "w.py").write_text(
        "from temporalio import workflow\nfrom temporalio.client import Client\nfrom models.invoice import X\n"
    )
    assert violations(RULES[0], tmp_path) == ["contracts/leak.py:4 imports httpx"]
    assert violations(RULES[1], tmp_path) == [
        "workflows/w.py:2 imports temporalio.client",
        "workflows/w.py:3 imports models.invoice, which reaches I/O: models.invoice -> sqlmodel",
    ]


def test_one_opt_out_word_list() -> None:
    """The words that opt a patient out are written once (contracts.replies) and read by
    inbound routing and the journeys alike; none of them is an appointment answer."""
    from contracts import replies
    from contracts.replies import OPT_OUT_WORDS, classify, opt_word

    for word in OPT_OUT_WORDS:
        assert classify(word) == "other"
        assert opt_word(word.upper() + "!") == "stop"
    assert {"stop", "cancel", "стоп", "відписатися"} <= OPT_OUT_WORDS
    for path in ROOT.rglob("*.py"):
        if {".venv", ".tools", "tests"} & set(path.relative_to(ROOT).parts) or path == Path(replies.__file__):
            continue
        text = path.read_text(encoding="utf-8")
        assert '"unsubscribe"' not in text, f"{path.relative_to(ROOT)} writes its own opt-out words"


def test_tests_share_helpers_through_tests_support() -> None:
    """Helpers live in tests/support/; nothing imports tests.conftest (pytest owns it)."""
    offenders = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in sorted((ROOT / "tests").rglob("*.py"))
        for line, name in _imports(path)
        if name == "tests.conftest" or name.startswith("tests.conftest.")
    ]
    assert offenders == []
