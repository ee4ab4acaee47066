"""The workflow sandbox builds every journey instance from a fresh import of its module; the
instances share one compiled copy of the module's code (core/sandbox_code.py), and nothing
else: each still has its own module namespace and classes, and the sandbox's restrictions
still hold. Before the shared copy, each instance unmarshalled its own (~92 KiB a journey)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from temporalio.worker.workflow_sandbox import _runner

from core import sandbox_code
from core.temporal import workflow_runner
from tests.support.replay import HISTORIES, replay_converter
from workflows.appointment import AppointmentJourney


@pytest.fixture
def instances(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every sandboxed instance the runner builds, kept alive for inspection."""
    built: list[Any] = []
    create = _runner.SandboxedWorkflowRunner.create_instance

    def keep(self: Any, det: Any) -> Any:
        inst = create(self, det)
        built.append(inst)
        return inst

    monkeypatch.setattr(_runner.SandboxedWorkflowRunner, "create_instance", keep)
    return built


async def _replay_twice() -> None:
    text = (HISTORIES / "appointment_full_visit.json").read_text()

    async def histories() -> Any:
        for i in range(2):
            yield WorkflowHistory.from_json(f"shared-code-{i}", text)

    replayer = Replayer(
        workflows=[AppointmentJourney], workflow_runner=workflow_runner(sandbox=True), data_converter=replay_converter()
    )
    async with replayer.workflow_replay_iterator(histories()) as results:
        async for r in results:
            assert r.replay_failure is None


async def test_sandboxed_journeys_share_their_modules_code_not_their_classes(instances: list[Any]) -> None:
    await _replay_twice()
    classes = [i.globals_and_locals["__temporal_workflow_class"] for i in instances]
    assert len(classes) >= 2  # the runner also builds one when the replayer starts, to check the class
    a, b = classes[-2:]
    # Two imports of the module: each instance has its own class, namespace and functions...
    assert a is not b and a is not AppointmentJourney
    assert a.run is not b.run
    assert a.run.__globals__ is not b.run.__globals__
    # ...built from one compiled copy of the code (the host's own import is left as it was).
    assert a.run.__code__ is b.run.__code__
    assert a._send_notice.__code__ is b._send_notice.__code__
    assert type(sys.modules["workflows.appointment"].__loader__) is not sandbox_code.SharedCodeSourceLoader


def test_outside_the_sandbox_imports_are_left_to_the_usual_finders() -> None:
    sandbox_code.install()
    sandbox_code.install()
    assert sum(isinstance(f, sandbox_code.SharedCodeFinder) for f in sys.meta_path) == 1
    assert not workflow.unsafe.in_sandbox()
    assert sandbox_code.SharedCodeFinder().find_spec("json.decoder", None) is None


@pytest.fixture
def in_sandbox() -> Iterator[None]:
    workflow.unsafe._set_in_sandbox(True)
    try:
        yield
    finally:
        workflow.unsafe._set_in_sandbox(False)


def _load(spec: importlib.machinery.ModuleSpec) -> Any:
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


def test_a_changed_file_is_compiled_again_and_extensions_are_not_touched(tmp_path: Path, in_sandbox: None) -> None:
    src = tmp_path / "journey_code_probe.py"
    src.write_text("def f():\n    return 1\n")
    finder = sandbox_code.SharedCodeFinder()

    spec = finder.find_spec("journey_code_probe", [str(tmp_path)])
    assert spec is not None and isinstance(spec.loader, sandbox_code.SharedCodeSourceLoader)
    one, two = _load(spec), _load(finder.find_spec("journey_code_probe", [str(tmp_path)]))  # type: ignore[arg-type]
    assert one is not two and one.f is not two.f and one.f.__code__ is two.f.__code__

    src.write_text("def f():\n    return 22\n")  # another size: a new version of the file
    three = _load(finder.find_spec("journey_code_probe", [str(tmp_path)]))  # type: ignore[arg-type]
    assert three.f() == 22 and one.f() == 1

    # A C extension (or anything not loaded from a .py file) goes to the usual finders.
    ext = importlib.util.find_spec("_decimal")
    if ext is not None and ext.origin and ext.origin.endswith(".so"):
        assert finder.find_spec("_decimal", [str(Path(ext.origin).parent)]) is None
    assert finder.find_spec("no_such_module_anywhere", [str(tmp_path)]) is None
