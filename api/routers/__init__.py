"""Every router of the API, in one list. A journey adds its router here."""

from api.routers import auth, codec, directory, health, tasks

ROUTERS = [
    health.router,
    auth.router,
    directory.router,
    tasks.router,
    codec.router,
]

# Treatment plans (SPEC §4): create, live state, advance along the stage graph, cancel, list.
from api.routers import treatment_plans  # noqa: E402

ROUTERS += [treatment_plans.router]

# Messaging (issue 3): provider webhooks and the sandbox provider's window.
from api.routers import sandbox, webhooks  # noqa: E402

ROUTERS += [webhooks.router, sandbox.router]

# Supplier invoices (SPEC §5): files, invoices with suppliers/payers, spending reports.
from api.routers import files, invoices, reports  # noqa: E402

ROUTERS += [files.router, invoices.router, reports.router]

# Appointment journey (SPEC §3): booking, live state, reschedule/cancel/confirm/check-in/finish.
from api.routers import appointments  # noqa: E402

ROUTERS += [appointments.router]
