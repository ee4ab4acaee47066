"""Who may do what: the role × resource matrix and branch scoping, in one place.

Every router asks here, never on its own:

* `allow(resource, action)` — a dependency that returns the current user when their role holds
  the action, else 403 naming the roles that do. `admin` holds everything.
* branch scoping — staff with a `clinic_id` see and touch only that clinic; staff without one
  (network roles: director, deputy director, accountant, ops, admin) see the whole network.
  Another clinic's object answers exactly as a missing one: 404 in a path, 422 "does not exist"
  when referenced in a body. Never 403, which would confirm that it exists.

The README's "Who may do what" table is rendered from `MATRIX` (`render_matrix()`), and
tests/test_access.py walks every cell over HTTP and compares the README with it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Depends, HTTPException, status
from sqlalchemy import ColumnElement, false, or_, true
from sqlmodel import col, select

from api.deps import CurrentUser
from models.core import Patient, Role, StaffUser

FD, OP, DOC = Role.front_desk, Role.operator, Role.doctor
ACC, DEP, DIR, OPS, ADMIN = Role.accountant, Role.deputy_director, Role.director, Role.ops, Role.admin
EVERYONE = frozenset(Role)

# resource -> action -> roles (admin is added to every action below).
# The action names are what the README table shows; keep them short.
_MATRIX: dict[str, dict[str, frozenset[Role]]] = {
    "patients": {
        "read": frozenset({FD, OP, DOC, DIR}),  # and their conversation thread
        "create": frozenset({FD, OP, DOC, DIR}),
        "message": frozenset({FD, OP}),  # write to a patient (also when completing a task)
    },
    "appointments": {
        "read": frozenset({FD, OP, DOC, DIR, OPS}),
        "book": frozenset({FD, OP}),  # book, reschedule, cancel, confirm
        "check-in": frozenset({FD, DOC}),
        "finish": frozenset({FD, DOC}),
    },
    "plans": {
        "read": frozenset({FD, OP, DOC, DIR, OPS}),
        "create": frozenset({FD, DOC}),  # create, cancel
        "advance": frozenset({FD, OP, DOC}),
    },
    "points": {  # a patient's bonus-points ledger; plans spend points under plans.create
        "read": frozenset({FD, OP, DOC, DIR}),
        "adjust": frozenset({FD, DIR}),  # add or take points with a reason
    },
    "waitlist": {  # the waiting list that freed slots are offered to
        "read": frozenset({FD, OP, DOC, DIR}),
        "manage": frozenset({FD, OP}),  # add a patient, take one off
    },
    "tasks": {  # by kind: see TASK_FAMILIES; each family is read + complete
        "contact": frozenset({FD, OP, DIR}),
        "feedback": frozenset({DIR}),
        "invoice": frozenset({DEP, ACC, DIR}),
    },
    "invoices": {
        "submit": EVERYONE,  # submit, see and resubmit your own, attach closing documents
        "read-all": frozenset({DEP, ACC, DIR}),
        "approve": frozenset({DEP}),  # approve, reject, return for rework
        "pay": frozenset({ACC}),  # pay, verify, return documents
        "counterparties": frozenset({DEP, ACC, DIR}),  # create suppliers and payer entities
    },
    "files": {
        "upload": EVERYONE,  # and read your own uploads
        "read-all": frozenset({DEP, ACC, DIR}),
    },
    "reports": {
        "expenses": frozenset({DEP, ACC, DIR}),  # the spending workbook
        "management": frozenset({DIR, DEP}),  # first visits, specialties, sources, conversion, NPS, …
        "operator-queue": frozenset({DIR, DEP, OPS}),
    },
    "sandbox": {"read": frozenset({FD, OP}), "reply": frozenset({FD, OP})},
    "codec": {"decode": frozenset({OPS})},  # /codec/encode and /codec/decode
    "staff": {"manage": frozenset()},  # /v1/staff: create, list, change role/clinic, deactivate
    "imports": {  # the MIS import (SPEC §6)
        "upload": frozenset({FD, OP, DIR, OPS}),  # upload a file, see runs, scan the drop folder
        "mapping": frozenset({DIR, OPS}),  # a clinic's column mapping and pickup time
    },
    "campaigns": {  # recall, bonus and birthday campaigns of a clinic (issue 12)
        "read": frozenset({FD, OP, DIR}),  # the settings and who was invited
        "manage": frozenset({DIR}),  # change the settings (switches the daily Schedule on/off)
    },
    # clinics, doctors, services and patient-text templates
    "directory": {"read": EVERYONE, "manage": frozenset({DIR})},
}
MATRIX: dict[str, dict[str, frozenset[Role]]] = {
    res: {act: roles | {ADMIN} for act, roles in acts.items()} for res, acts in _MATRIX.items()
}

# Operator task kinds by family (the `tasks` actions above). A kind not listed is a
# patient-contact task: it carries a patient's name, number or words.
TASK_FAMILIES: dict[str, frozenset[str]] = {
    "feedback": frozenset({"detractor_feedback"}),
    "invoice": frozenset({"invoice_reminder", "invoice_escalation", "email_failed"}),
}
CONTACT = "contact"

# Roles that belong to a branch: they cannot be created without one.
BRANCH_ROLES = frozenset({FD, DOC})


def assignment_problem(role: Role, clinic_id: str | None) -> str | None:
    """Why a role/clinic pair cannot be given to a user, or None (CLI and /v1/staff)."""
    if role in BRANCH_ROLES and not clinic_id:
        return f"a {role.value} works at a branch: give the clinic id"
    if role is ADMIN and clinic_id:
        return "admin is a network role: no clinic"
    return None


def can(user: StaffUser, resource: str, action: str) -> bool:
    return user.role in MATRIX[resource][action]


def allow(resource: str, action: str) -> Callable[[StaffUser], Awaitable[StaffUser]]:
    """Dependency: the current user, if their role may `action` on `resource`; else 403."""
    roles = MATRIX[resource][action]  # KeyError at import time for a misspelt pair

    async def _check(user: CurrentUser) -> StaffUser:
        if user.role not in roles:
            names = ", ".join(sorted(r.value for r in roles))
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"role {user.role.value!r} may not {action} {resource}; allowed: {names}",
            )
        return user

    return _check


def may(resource: str, action: str) -> Any:
    """`Depends(allow(...))` for `Annotated[StaffUser, may("tasks", "contact")]` aliases."""
    return Depends(allow(resource, action))


# ---------------------------------------------------------------- branch scoping
def clinic_scope(user: StaffUser) -> str | None:
    """The one clinic a user is bound to, or None for the whole network."""
    if user.role is ADMIN:
        return None
    return user.clinic_id


def in_scope(user: StaffUser, clinic_id: str | None) -> bool:
    scope = clinic_scope(user)
    return scope is None or clinic_id == scope


def not_found(what: str, id_: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"{what} {id_} not found")


def ensure_in_scope(user: StaffUser, clinic_id: str | None, what: str, id_: str) -> None:
    """404 for another clinic's object: exactly what a missing one answers."""
    if not in_scope(user, clinic_id):
        raise not_found(what, id_)


def clinic_filter(user: StaffUser, column: Any) -> ColumnElement[bool] | None:
    """A WHERE condition keeping rows of the user's clinic, or None for network users."""
    scope = clinic_scope(user)
    return None if scope is None else col(column) == scope


def patient_filter(user: StaffUser) -> ColumnElement[bool] | None:
    """Patients a branch user may see: registered at the clinic, with a visit or a plan
    there, or the guardian of such a patient. None for network users."""
    scope = clinic_scope(user)
    return None if scope is None else patient_condition(scope)


def patient_condition(scope: Any) -> ColumnElement[bool]:
    """`patient_filter` for the clinic `scope` (its id, or a bound parameter standing for it)."""
    from models.appointment import Appointment
    from models.treatment import TreatmentPlan

    ward = Patient.__table__.alias("ward")  # type: ignore[attr-defined]
    return or_(
        col(Patient.clinic_id) == scope,
        col(Patient.id).in_(select(Appointment.patient_id).where(Appointment.clinic_id == scope)),
        col(Patient.id).in_(select(TreatmentPlan.patient_id).where(TreatmentPlan.clinic_id == scope)),
        col(Patient.id).in_(select(ward.c.guardian_id).where(ward.c.clinic_id == scope)),
    )


async def patient_visible(session: Any, user: StaffUser, patient_id: str) -> Patient | None:
    """The patient, if it exists and the user may see it; else None (say 404/422)."""
    cond = patient_filter(user)
    q = select(Patient).where(Patient.id == patient_id)
    if cond is not None:
        q = q.where(cond)
    return (await session.exec(q)).first()


# ---------------------------------------------------------------- tasks by kind
def task_family(kind: str) -> str:
    for family, kinds in TASK_FAMILIES.items():
        if kind in kinds:
            return family
    return CONTACT


def task_families_of(role: Role) -> set[str]:
    return {family for family, roles in MATRIX["tasks"].items() if role in roles}


def task_families(user: StaffUser) -> set[str]:
    return task_families_of(user.role)


def task_kind_filter(user: StaffUser) -> ColumnElement[bool]:
    """A WHERE condition keeping only the task kinds the user's role may see."""
    from models.core import OperatorTask

    allowed = task_families(user)
    kind = col(OperatorTask.kind)
    if not allowed:
        return false()
    if CONTACT in allowed:
        hidden = [k for fam, kinds in TASK_FAMILIES.items() if fam not in allowed for k in kinds]
        return kind.not_in(hidden) if hidden else true()
    return kind.in_([k for fam in allowed for k in TASK_FAMILIES.get(fam, ())])


def ensure_task_kind(user: StaffUser, kind: str) -> None:
    family = task_family(kind)
    if family not in task_families(user):
        names = ", ".join(sorted(r.value for r in MATRIX["tasks"][family]))
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"role {user.role.value!r} may not see {family} tasks; allowed: {names}"
        )


# ---------------------------------------------------------------- the README table
RESOURCE_TITLES = {
    "patients": "patients",
    "appointments": "appointments",
    "plans": "treatment plans",
    "points": "bonus points",
    "waitlist": "waiting list",
    "tasks": "tasks (by kind)",
    "invoices": "invoices",
    "files": "files",
    "reports": "reports",
    "sandbox": "sandbox",
    "codec": "codec",
    "staff": "staff",
    "imports": "MIS imports",
    "campaigns": "campaigns",
    "directory": "clinics, doctors, services, texts",
}


def cell(role: Role, resource: str) -> str:
    acts = [a for a, roles in MATRIX[resource].items() if role in roles]
    return ", ".join(acts) if acts else "—"


def render_matrix() -> str:
    """The markdown table the README carries (tests compare the two)."""
    head = "| role | " + " | ".join(RESOURCE_TITLES[r] for r in MATRIX) + " |"
    sep = "|---" * (len(MATRIX) + 1) + "|"
    rows = [f"| `{role.value}` | " + " | ".join(cell(role, r) for r in MATRIX) + " |" for role in Role]
    return "\n".join([head, sep, *rows])
