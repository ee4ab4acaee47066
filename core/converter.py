"""The payload converter of every client, worker and replayer: the SDK's default, with one
change in how a JSON payload becomes a dataclass.

The SDK's converter calls `typing.get_type_hints(cls)` for every dataclass it decodes, and our
contracts are written with `from __future__ import annotations`, so each call compiles and
evaluates every field's annotation string again: decoding one `OutboundMessage` took ~0.39 ms,
most of it there, and a journey decodes a dozen such values per workflow task and activity.
`DataclassFields` resolves a dataclass's field types once per class and then converts the
fields exactly as the SDK does (`temporalio.converter.value_to_type` for each field, unknown
keys ignored, `init=False` fields restored after construction): ~0.08 ms for the same message.
Everything else (encoding, other types, failures) is the SDK's own.
"""

from __future__ import annotations

import dataclasses
import typing
import weakref
from typing import Any

from temporalio.converter import (
    CompositePayloadConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
    JSONTypeConverter,
    value_to_type,
)

# (field name, type hint, passed to __init__) per dataclass. Weak keys: a class that goes away
# (e.g. one defined afresh inside a workflow sandbox) takes its entry with it.
_FIELDS: weakref.WeakKeyDictionary[type, tuple[tuple[str, Any, bool], ...]] = weakref.WeakKeyDictionary()


def dataclass_fields(cls: type) -> tuple[tuple[str, Any, bool], ...]:
    found = _FIELDS.get(cls)
    if found is None:
        hints = typing.get_type_hints(cls)
        found = tuple((f.name, hints[f.name], f.init) for f in dataclasses.fields(cls))
        _FIELDS[cls] = found
    return found


class DataclassFields(JSONTypeConverter):
    """JSON object -> dataclass with the field types resolved once per class."""

    def __init__(self) -> None:
        self.chain: list[JSONTypeConverter] = [self]

    def to_typed_value(self, hint: type, value: Any) -> Any | None:
        if not (isinstance(hint, type) and dataclasses.is_dataclass(hint) and isinstance(value, dict)):
            return JSONTypeConverter.Unhandled  # the SDK's own rules (and its errors)
        init: dict[str, Any] = {}
        late: dict[str, Any] = {}
        for name, field_hint, in_init in dataclass_fields(hint):
            if name not in value:
                continue  # a missing required field fails in the constructor, as in the SDK
            try:
                converted = value_to_type(field_hint, value[name], self.chain)
            except Exception as err:
                raise TypeError(f"Failed converting field {name} on dataclass {hint}") from err
            (init if in_init else late)[name] = converted
        obj = hint(**init)
        for name, converted in late.items():
            object.__setattr__(obj, name, converted)
        return obj


class JourneyPayloadConverter(CompositePayloadConverter):
    """The SDK's default payload converters, the JSON one with `DataclassFields`."""

    def __init__(self) -> None:
        super().__init__(
            *(
                JSONPlainPayloadConverter(custom_type_converters=[DataclassFields()])
                if isinstance(c, JSONPlainPayloadConverter)
                else c
                for c in DefaultPayloadConverter.default_encoding_payload_converters
            )
        )
