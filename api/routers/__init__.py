"""Every router of the API, in one list. A journey adds its router here."""

from api.routers import (
    appointments,
    auth,
    campaigns,
    codec,
    conversations,
    directory,
    files,
    health,
    imports,
    invoices,
    pages,
    points,
    reports,
    sandbox,
    services,
    staff,
    tasks,
    templates,
    treatment_plans,
    waitlist,
    webhooks,
)

ROUTERS = [
    health.router,
    auth.router,
    staff.router,
    directory.router,
    tasks.router,
    codec.router,
    # Appointments (SPEC §3): booking, live state, reschedule/cancel/confirm/check-in/finish.
    appointments.router,
    # Patients' replies: provider webhooks, and the sandbox provider's window.
    webhooks.router,
    sandbox.router,
    # Conversations: staff reply on the patient's channel; the thread, in and out.
    conversations.router,
    # What patients read: templates per clinic and language, the service catalogue with memos.
    templates.router,
    services.router,
    # The patient's own pages behind the signed links in every message (/p/<token>).
    pages.router,
    # Bonus points: the patient's ledger (plans spend from it).
    points.router,
    # The waiting list: freed slots are offered to it (issue 12).
    waitlist.router,
    # Treatment plans (SPEC §4).
    treatment_plans.router,
    # Supplier invoices (SPEC §5): files, invoices with suppliers/payers, spending reports.
    files.router,
    invoices.router,
    reports.router,
    # The daily MIS import (SPEC §6): mapping, uploads, progress, drop-folder pickup.
    imports.router,
    # Campaigns (issue 12): recall, bonus, birthday settings and who they reached.
    campaigns.router,
]
