"""Custom search attributes: one list shared by `make run`, docker-compose's init step,
tests and workflow code. Only opaque ids, stages, dates and categories: no patient data."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from temporalio.common import SearchAttributeKey

CLINIC_ID = SearchAttributeKey.for_keyword("ClinicId")
APPOINTMENT_STAGE = SearchAttributeKey.for_keyword("AppointmentStage")
APPOINTMENT_START = SearchAttributeKey.for_datetime("AppointmentStart")
TREATMENT_DIRECTION = SearchAttributeKey.for_keyword("TreatmentDirection")
TREATMENT_STAGE = SearchAttributeKey.for_keyword("TreatmentStage")
INVOICE_STATE = SearchAttributeKey.for_keyword("InvoiceState")
EXPENSE_CATEGORY = SearchAttributeKey.for_keyword("ExpenseCategory")

ALL: tuple[SearchAttributeKey[Any], ...] = (
    CLINIC_ID,
    APPOINTMENT_STAGE,
    APPOINTMENT_START,
    TREATMENT_DIRECTION,
    TREATMENT_STAGE,
    INVOICE_STATE,
    EXPENSE_CATEGORY,
)

_CLI_TYPE = MappingProxyType(
    {
        "KEYWORD": "Keyword",
        "DATETIME": "Datetime",
        "TEXT": "Text",
        "INT": "Int",
        "DOUBLE": "Double",
        "BOOL": "Bool",
        "KEYWORD_LIST": "KeywordList",
    }
)


def cli_args() -> list[str]:
    """`--search-attribute Name=Type` flags for `temporal server start-dev`."""
    args: list[str] = []
    for key in ALL:
        kind = key.indexed_value_type.name.removeprefix("INDEXED_VALUE_TYPE_")
        args += ["--search-attribute", f"{key.name}={_CLI_TYPE[kind]}"]
    return args


if __name__ == "__main__":  # used by the Makefile and scripts
    print(" ".join(cli_args()))
