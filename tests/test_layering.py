"""The layering, written as a rule this test checks (AST: every import, also inside functions).

    contracts/   pure: the standard library's computing modules and other contracts, nothing else
    workflows/   deterministic: nothing they import, directly or through any project module,
                 does I/O (no database, HTTP, logging library, Temporal client or worker)
    providers/   provider clients (HTTP), used by activities and the API's webhooks
    activities/  I/O for the journeys; never imports workflows, api or the CLI
    api/         the HTTP edge; never imports activities (their internals); it may name the
                 (pure) workflow classes for typed calls: handle.execute_update(Journey.cancel, ...)
    core/        shared infrastructure; never imports api, activities or the CLI
    passed through the workflow sandbox (contracts, workflows.planner, ...): no clock,
                 randomness or I/O, in them or anything of ours they import

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


# Our modules the workflow sandbox passes through (core.temporal.workflow_runner) are not
# re-imported for each journey, so the sandbox does not see their calls: they, and every project
# module they import, must read no clock or randomness and do no I/O.
NOT_PASSED_THROUGH = IO_LIBRARIES | {"asyncio", "random", "time", "uuid", "secrets"}
CLOCK_METHODS = frozenset({"now", "utcnow", "today", "fromtimestamp"})  # datetime.now(), date.today()...
IO_FUNCTIONS = frozenset({"open", "input"})


def passed_through_files(modules: set[str], root: Path = ROOT) -> dict[str, Path]:
    """Our files under the passed-through names, and every project file they import."""
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


def passthrough_violations(modules: set[str], root: Path = ROOT) -> list[str]:
    found = []
    for rel, path in passed_through_files(modules, root).items():
        found += [f"{rel}:{line} imports {name}" for line, name in _imports(path) if _matches(name, NOT_PASSED_THROUGH)]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                f = node.func
                if isinstance(f, ast.Attribute) and f.attr in CLOCK_METHODS:
                    found.append(f"{rel}:{node.lineno} calls .{f.attr}()")
                elif isinstance(f, ast.Name) and f.id in IO_FUNCTIONS:
                    found.append(f"{rel}:{node.lineno} calls {f.id}()")
    return found


def test_modules_passed_through_the_sandbox_read_no_clock_randomness_or_io() -> None:
    from temporalio.worker.workflow_sandbox import SandboxRestrictions

    from core.temporal import workflow_runner

    ours = workflow_runner().restrictions.passthrough_modules - SandboxRestrictions.default.passthrough_modules
    assert {"contracts", "workflows.planner"} <= ours
    assert "models/quiet_hours.py" in passed_through_files(ours)  # the planner's own import
    assert passthrough_violations(ours) == []


def test_the_passthrough_rule_catches_clocks_and_io_behind_an_import(tmp_path: Path) -> None:
    (tmp_path / "workflows").mkdir()
    (tmp_path / "workflows" / "planner.py").write_text(
        "from datetime import datetime, time\nfrom models.hours import h\n\ndef f():\n"
        "    return datetime.now(), time(8)\n"
    )
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "hours.py").write_text("import random\n\ndef h():\n    return open('x')\n")
    assert passthrough_violations({"workflows.planner"}, tmp_path) == [
        "workflows/planner.py:5 calls .now()",
        "models/hours.py:1 imports random",
        "models/hours.py:4 calls open()",
    ]


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
