"""The journeys' contracts: one pure module per journey, imported by `workflows/`,
`activities/` and `api/` alike.

Each module holds what crosses a boundary of its journey: the workflow input, its state
(carried over continue-as-new), THE one snapshot type (the `state` query answer, every
update's result, the sync activity's input, the table row's columns, the API's response),
commands, workflow / signal / update / query names, id helpers. Everything here is a plain
dataclass, constant or pure function: no I/O library is imported (tests/test_layering.py
checks it), so workflows import these modules through the sandbox unchanged.

Payloads are versionable: add fields with defaults; never rename a field or a name that a
running workflow or a saved history has already seen.
"""
