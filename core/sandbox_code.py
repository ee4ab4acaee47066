"""One compiled copy of each workflow module per process, shared by every sandboxed journey.

Temporal's workflow sandbox imports a journey's module afresh for every workflow instance it
builds: a new journey, and a journey rebuilt from its history after the sticky cache evicted
it. The standard loader reads and unmarshals the module's `.pyc` each time (or compiles the
source, when no `.pyc` can be written), so every cached journey held its own copy of the
module's code objects: ~92 KiB of the ~160 KiB a cached appointment journey allocates in
Python, and ~0.7 ms of each rebuild.

Code objects are immutable, so one copy can serve every instance: each still executes the
module body in its own namespace and gets its own functions and classes (the sandbox's
isolation is unchanged; only the bytecode is shared). `install()` puts a finder first on
`sys.meta_path` that acts only for imports made inside the sandbox and only for modules the
standard path finder would load from a `.py` file; it hands those a loader that keeps the code
object per (path, mtime, size), so an edited file is compiled again.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import threading
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import CodeType, ModuleType

from temporalio import workflow

_lock = threading.Lock()
_codes: dict[tuple[str, int, int], CodeType] = {}


def _key(path: str) -> tuple[str, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (path, st.st_mtime_ns, st.st_size)


class SharedCodeSourceLoader(importlib.machinery.SourceFileLoader):
    """The standard source loader, with `get_code` done once per file version."""

    def get_code(self, fullname: str) -> CodeType:  # type: ignore[override]
        key = _key(self.get_filename(fullname))
        if key is None:
            return super().get_code(fullname)  # type: ignore[return-value]
        code = _codes.get(key)
        if code is None:
            code = super().get_code(fullname)
            if code is None:  # pragma: no cover - a source file always has code
                raise ImportError(f"no code for {fullname}", name=fullname)
            with _lock:
                code = _codes.setdefault(key, code)
        return code


class SharedCodeFinder(importlib.abc.MetaPathFinder):
    """Finds what `PathFinder` finds; inside the sandbox, a `.py` module's loader is swapped
    for `SharedCodeSourceLoader`. Outside the sandbox it steps aside (returns None)."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if not workflow.unsafe.in_sandbox():
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or type(spec.loader) is not importlib.machinery.SourceFileLoader or spec.origin is None:
            return None  # built-in, extension, namespace package, zip...: the usual finders
        spec.loader = SharedCodeSourceLoader(fullname, spec.origin)
        return spec


_finder = SharedCodeFinder()


def install() -> None:
    """Idempotent: the finder goes first on `sys.meta_path` once per process."""
    with _lock:
        if not any(isinstance(f, SharedCodeFinder) for f in sys.meta_path):
            sys.meta_path.insert(0, _finder)
