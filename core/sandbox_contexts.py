"""The sandboxed journeys' payload contexts, answered without a trip into the sandbox.

Around every activation the SDK walks the activation's and the completion's payloads six times
(decode: references, external storage, codec; encode: the same three), and each walk asks the
workflow instance, for every payload-carrying command, which serialization context (and which
external-store context) its payloads belong to. The sandboxed runner answers each question the
way it runs the journey itself: it `exec`s a snippet inside the sandbox with its importer
applied (`sys.modules` and `builtins.__import__` swapped, the builtins restricted, then all of it
put back). That is ~100 µs a question, ~14 questions a journey step on average:
`bench.counters --n 300` counted 12,600 serialization-context and 2,100 store-context trips for
900 journey steps, 1.5 s of the worker's CPU, ~1.7 ms of each step's ~23 ms.

The answer itself needs no sandbox: it is the SDK's own `_WorkflowInstanceImpl` reading the
instance's `info` and its pending activities, children and signals, and building a
`temporalio.converter` context object (the `temporalio` package always passes through the
sandbox, so the objects are the host's). No journey code runs, nothing is imported, and no
clock or randomness is read. `DirectContexts` wraps the sandboxed instance and asks that object
directly; activations still run inside the sandbox, with every restriction as before.

If an SDK release stops exposing the in-sandbox object the way this reads it, the wrapper falls
back to the sandbox's own (slower, equal) answer; `tests/test_sandbox_contexts.py` fails then,
so the fallback is noticed rather than silently paid for.
"""

from __future__ import annotations

from typing import Any

import temporalio.converter
from temporalio.bridge.proto.workflow_activation import WorkflowActivation
from temporalio.bridge.proto.workflow_completion import WorkflowActivationCompletion
from temporalio.converter._extstore import StorageDriverStoreContext
from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

# The name under which the SDK's sandboxed instance keeps its in-sandbox object (temporalio
# 1.35: `_Instance.globals_and_locals["__temporal_in_sandbox"]`, whose `.instance` is the
# workflow instance proper).
_IN_SANDBOX = "__temporal_in_sandbox"


def _inner(instance: WorkflowInstance) -> Any | None:
    """The workflow instance inside `instance`'s sandbox, or None if it cannot be found."""
    namespace = getattr(instance, "globals_and_locals", None)
    in_sandbox = namespace.get(_IN_SANDBOX) if isinstance(namespace, dict) else None
    inner = getattr(in_sandbox, "instance", None)
    if inner is None or not callable(getattr(inner, "get_serialization_context", None)):
        return None
    return inner


class DirectContexts(WorkflowInstance):
    """A sandboxed workflow instance whose payload contexts are read without entering the
    sandbox. Everything else is the sandboxed instance's."""

    def __init__(self, sandboxed: WorkflowInstance) -> None:
        self.sandboxed = sandboxed
        self.direct = _inner(sandboxed)

    def activate(self, act: WorkflowActivation) -> WorkflowActivationCompletion:
        return self.sandboxed.activate(act)

    def get_serialization_context(self, command_info: Any) -> temporalio.converter.SerializationContext | None:
        if self.direct is None:
            return self.sandboxed.get_serialization_context(command_info)
        context: temporalio.converter.SerializationContext | None = self.direct.get_serialization_context(command_info)
        return context

    def get_external_store_context(self, command_info: Any) -> StorageDriverStoreContext:
        if self.direct is None:
            return self.sandboxed.get_external_store_context(command_info)
        context: StorageDriverStoreContext = self.direct.get_external_store_context(command_info)
        return context

    def get_info(self) -> Any:
        return self.sandboxed.get_info()

    def get_thread_id(self) -> int | None:
        return self.sandboxed.get_thread_id()


class JourneySandbox(SandboxedWorkflowRunner):
    """The SDK's sandboxed runner (same restrictions, same isolation per instance), whose
    instances answer payload-context questions directly (`DirectContexts`)."""

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return DirectContexts(super().create_instance(det))


__all__ = ["DirectContexts", "JourneySandbox"]
