"""`journeys`: the console command for ops and newcomers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from sqlmodel import select

from core.settings import Settings, get_settings

if TYPE_CHECKING:
    from temporalio.client import Client

app = typer.Typer(
    help="patient-journeys: clinic patient journeys on Temporal.", no_args_is_help=True, add_completion=False
)


@app.command()
def migrate() -> None:
    """Apply every database migration (SQLite or PostgreSQL, from DATABASE_URL)."""
    from core.db import migrate as run

    run(get_settings().database_url)
    typer.echo("database is up to date")


@app.command("create-user")
def create_user(
    username: str = typer.Option(..., "--username", "-u", help="login name"),
    password: str = typer.Option(..., "--password", "-p", help="at least 8 characters"),
    role: str = typer.Option(
        ..., "--role", "-r", help="front_desk, operator, doctor, accountant, deputy_director, director, ops or admin"
    ),
    email: str = typer.Option(None, "--email", help="for e-mailed notifications and reports"),
    full_name: str = typer.Option(None, "--full-name"),
    clinic: str = typer.Option(
        None, "--clinic", help="clinic id: the user sees only that branch (required for front_desk and doctor)"
    ),
    update: bool = typer.Option(False, "--update", help="change password/role/clinic if the user exists"),
) -> None:
    """Create a staff user (or with --update, reset one)."""
    from api.policy import assignment_problem
    from models.core import Role

    try:
        role_v = Role(role)
    except ValueError:
        raise typer.BadParameter(
            f"unknown role {role!r}; one of: " + ", ".join(r.value for r in Role), param_hint="--role"
        ) from None
    if len(password) < 8:
        raise typer.BadParameter("password must have at least 8 characters", param_hint="--password")
    if problem := assignment_problem(role_v, clinic):
        raise typer.BadParameter(problem, param_hint="--clinic")
    created = asyncio.run(
        _create_user(get_settings().database_url, username, password, role_v, email, full_name, update, clinic)
    )
    where = f" at clinic {clinic}" if clinic else " (whole network)"
    typer.echo(f"{'created' if created else 'updated'} user {username!r} with role {role_v.value}{where}")


async def _create_user(  # type: ignore[no-untyped-def]
    database_url, username, password, role, email, full_name, update, clinic_id: str | None = None
) -> bool:
    from core.db import make_engine, session_factory
    from core.security import hash_password
    from models.core import Clinic, StaffUser

    engine = make_engine(database_url)
    try:
        async with session_factory(engine)() as s:
            if clinic_id is not None and await s.get(Clinic, clinic_id) is None:
                typer.echo(f"no clinic {clinic_id!r} (list them: GET /v1/clinics)", err=True)
                raise typer.Exit(2)
            user = (await s.exec(select(StaffUser).where(StaffUser.username == username))).first()
            if user and not update:
                typer.echo(f"user {username!r} already exists (use --update to change it)", err=True)
                raise typer.Exit(1)
            created = user is None
            user = user or StaffUser(username=username, password_hash="", role=role)
            user.password_hash = hash_password(password)
            user.role = role
            user.email = email or user.email
            user.full_name = full_name or user.full_name
            if clinic_id is not None or created:
                user.clinic_id = clinic_id
            s.add(user)
            await s.commit()
            return created
    finally:
        await engine.dispose()


@app.command("ensure-admin")
def ensure_admin() -> None:
    """First run: create user `admin` with a random password kept in DATA_DIR/admin-password."""
    import secrets as _secrets

    from models.core import Role

    settings = get_settings()
    path = settings.data_dir / "admin-password"
    if path.exists():
        return
    password = _secrets.token_urlsafe(12)
    try:
        asyncio.run(_create_user(settings.database_url, "admin", password, Role.admin, None, "Administrator", False))
    except typer.Exit:
        return  # someone already made an admin by hand
    from core.settings import write_private

    write_private(path, password + "\n")
    typer.echo(f"created user 'admin'; its password is in {path}")


@app.command("codec-secret")
def codec_secret() -> None:
    """Print the codec secret the Temporal UI uses to reach /codec (local runs)."""
    typer.echo(get_settings().codec_secret)


@app.command("migrate-and-register")
def migrate_and_register() -> None:
    """Deployment one-shot: apply migrations, register search attributes, ensure schedules."""
    migrate()
    _with_temporal(_register_search_attributes, _ensure_schedules)


@app.command()
def api() -> None:
    """Run the HTTP API (uvicorn) on API_HOST:API_PORT."""
    from api.main import main

    main()


@app.command()
def worker() -> None:
    """Run the Temporal worker on TEMPORAL_TASK_QUEUE."""
    from worker import main

    main()


@app.command()
def health() -> None:
    """Check the database, Temporal and a worker on our task queue; exit 1 naming what is
    missing (container healthchecks use this)."""

    async def _run() -> list[str]:
        from core.db import make_engine
        from core.health import missing
        from core.temporal import connect

        s = get_settings()
        engine = make_engine(s.database_url)
        try:
            client = await asyncio.wait_for(connect(s), timeout=5)
        except Exception:  # noqa: BLE001
            client = None
        try:
            return await missing(s, engine, client)
        finally:
            await engine.dispose()

    from core.temporal import exit_without_teardown

    problems = asyncio.run(_run())
    if problems:
        typer.echo("unhealthy: " + "; ".join(problems), err=True)
        exit_without_teardown(1)
    typer.echo("ok")
    exit_without_teardown(0)


@app.command("search-attributes")
def search_attributes() -> None:
    """Print the dev-server flags that register our custom search attributes."""
    from core.search_attributes import cli_args

    typer.echo(" ".join(cli_args()))


@app.command("register-search-attributes")
def register_search_attributes() -> None:
    """Register our search attributes on a running Temporal cluster (idempotent)."""
    _with_temporal(_register_search_attributes)


@app.command()
def schedules() -> None:
    """Create or update the Temporal Schedules (idempotent), both on the 1st in NETWORK_TIMEZONE:
    the monthly spending report (07:00, to the deputy directors) and the management pack
    (07:30, last month's management reports in one workbook, to the directors)."""
    _with_temporal(_ensure_schedules)


def _with_temporal(*steps: Callable[[Client, Settings], Awaitable[None]]) -> NoReturn:
    """Run steps that share one Temporal client, then end the process (see
    core.temporal.exit_without_teardown for why this command does not return)."""
    from core.temporal import connect, exit_without_teardown

    async def _run() -> None:
        s = get_settings()
        client = await connect(s)
        for step in steps:
            await step(client, s)

    asyncio.run(_run())
    exit_without_teardown(0)


async def _register_search_attributes(client: Client, s: Settings) -> None:
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest

    from core.search_attributes import ALL

    have = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=s.temporal_namespace)
    )
    missing = {
        k.name: IndexedValueType.ValueType(int(k.indexed_value_type))
        for k in ALL
        if k.name not in have.custom_attributes
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=s.temporal_namespace, search_attributes=missing)
        )
    typer.echo(f"registered: {sorted(missing) or 'nothing new'}")


async def _ensure_schedules(client: Client, s: Settings) -> None:
    from core.schedules import ALL

    for ensure in ALL:
        handle = await ensure(client, s)
        typer.echo(f"schedule {handle.id!r} is up to date ({s.network_timezone})")
    from core import imports
    from core.db import make_engine, session_factory

    engine = make_engine(s.database_url)
    try:
        async with session_factory(engine)() as session:
            n = await imports.ensure_all_drop_schedules(client, s.temporal_task_queue, session)
    finally:
        await engine.dispose()
    typer.echo(f"MIS drop-folder schedules up to date for {n} clinic(s) with a code")
    from core import campaigns

    engine = make_engine(s.database_url)
    try:
        async with session_factory(engine)() as session:
            n = await campaigns.ensure_all_schedules(client, s.temporal_task_queue, session)
    finally:
        await engine.dispose()
    typer.echo(f"campaign schedules up to date: {n} switched on")


@app.command("import")
def import_file(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="CSV or XLSX from the MIS"),
    clinic: str = typer.Option(..., "--clinic", "-c", help="clinic id or code"),
    kind: str = typer.Option("visits", "--kind", "-k", help="visits, completed or patients"),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="follow the import with a progress bar"),
) -> None:
    """Import a file from the clinic's MIS (the same import as POST /v1/imports), following
    it with a progress bar; prints the counts and every row that was refused, with why."""
    from core.temporal import exit_without_teardown
    from models.imports import ImportKind

    try:
        kind_v = ImportKind(kind)
    except ValueError:
        raise typer.BadParameter("one of: visits, completed, patients", param_hint="--kind") from None
    code = asyncio.run(_import_file(file.name, file.read_bytes(), clinic, kind_v, wait))
    exit_without_teardown(code)


async def _import_file(name: str, content: bytes, clinic_ref: str, kind: Any, wait: bool) -> int:
    from sqlmodel import or_

    from core import imports
    from core.db import make_engine, session_factory
    from core.mis_files import FileError, read_table, resolve_columns
    from core.temporal import connect
    from models.core import Clinic

    s = get_settings()
    engine = make_engine(s.database_url)
    try:
        async with session_factory(engine)() as session:
            q = select(Clinic).where(or_(Clinic.id == clinic_ref, Clinic.code == clinic_ref))
            clinic = (await session.exec(q)).first()
            if clinic is None:
                typer.echo(f"no clinic with id or code {clinic_ref!r}", err=True)
                return 2
            try:
                table = read_table(content)
                resolve_columns(table.headers, (await imports.mapping_of(session, clinic.id)).columns, kind)
            except FileError as e:
                typer.echo(f"{name}: {e}", err=True)
                return 2
            run, _ = await imports.register(
                session, clinic=clinic, kind=kind, file_name=name, content=content, source="cli"
            )
            client = await connect(s)
            await imports.start(client, s.temporal_task_queue, run)
            typer.echo(f"import {run.id} started (workflow {run.workflow_id})")
            if not wait:
                return 0
            total = len(table.rows)
            with typer.progressbar(length=total, label=f"{kind.value:>9}", show_pos=True) as bar:
                shown = 0
                while True:
                    await asyncio.sleep(0.5)
                    await session.refresh(run)
                    st = await imports.status(session, run, with_errors=False)
                    done = min(st.processed_rows, total)
                    bar.update(done - shown)
                    shown = done
                    if run.state in ("completed", "failed"):
                        break
            st = await imports.status(session, run)
            if st.error:
                typer.echo(f"failed: {st.error}", err=True)
                return 1
            typer.echo("  ".join(f"{k}: {v}" for k, v in st.counts.items()))
            for problem in st.errors:
                where = f"  row {problem.row}" + (f", column {problem.column!r}" if problem.column else "")
                typer.echo(f"{where}: {problem.reason}")
            return 0
    finally:
        await engine.dispose()


@app.command()
def demo(
    api_url: str = typer.Option(None, "--api-url", help="default: PUBLIC_BASE_URL"),
    minutes: float = typer.Option(3.0, "--minutes", help="first visit starts this far ahead"),
) -> None:
    """Book a few appointment journeys on a clinic with a compressed policy (seconds), through
    the running API, so you can watch them move in the Temporal UI within minutes."""
    import uuid
    from datetime import UTC, datetime, timedelta

    import httpx

    s = get_settings()
    url = (api_url or s.public_base_url).rstrip("/")
    pw_file = s.data_dir / "admin-password"
    if not pw_file.exists():
        raise typer.BadParameter(f"{pw_file} is missing: run `journeys ensure-admin` first")
    with httpx.Client(base_url=url, timeout=30) as h:
        tok = h.post("/v1/auth/token", data={"username": "admin", "password": pw_file.read_text().strip()})
        tok.raise_for_status()
        h.headers["Authorization"] = f"Bearer {tok.json()['access_token']}"

        def post(path: str, body: dict) -> dict:
            r = h.post(path, json=body)
            if r.status_code >= 400:
                raise typer.BadParameter(f"{path}: {r.status_code} {r.text}")
            return r.json()

        clinic = post(
            "/v1/clinics",
            {
                "name": f"Demo clinic {uuid.uuid4().hex[:4]}",
                "address": "1 Khreshchatyk St, Kyiv",
                "phone": "+380441234567",
                "timezone": "Europe/Kyiv",
                "review_url": "https://example.org/reviews/demo",
                "policy": {
                    "reminder_lead": 120,
                    "reask_interval": 20,
                    "reask_count": 3,
                    "voice_call_after": 20,
                    "confirm_deadline": 45,
                    "no_show_grace": 30,
                    "feedback_delay": 30,
                    "survey_timeout": 300,
                    "quiet_hours": None,
                },
            },
        )
        start = datetime.now(UTC) + timedelta(minutes=minutes)
        for i, (name, service) in enumerate(
            [("Demo Patient A", "Implant placement"), ("Demo Patient B", "Hygiene"), ("Demo Patient C", "Extraction")]
        ):
            doctor = post(
                "/v1/doctors", {"clinic_id": clinic["id"], "full_name": f"Dr Demo {i + 1}", "specialty": "therapy"}
            )
            patient = post(
                "/v1/patients",
                {"full_name": name, "clinic_id": clinic["id"], "phone": f"+38067{uuid.uuid4().int % 10**7:07d}"},
            )
            appt = post(
                "/v1/appointments",
                {
                    "patient_id": patient["id"],
                    "clinic_id": clinic["id"],
                    "doctor_id": doctor["id"],
                    "starts_at": (start + timedelta(minutes=i)).isoformat(),
                    "duration_minutes": 5,
                    "service": service,
                },
            )
            typer.echo(f"booked {appt['id']} ({service}) for patient {patient['id']} at {appt['starts_at']}")
    typer.echo(
        f"\nclinic {clinic['id']}. Watch: {s.temporal_ui_url}/namespaces/"
        f"{s.temporal_namespace}/workflows?query=ClinicId%3D%22{clinic['id']}%22\n"
        f"Answer as a patient: POST {url}/v1/sandbox/reply "
        '{"patient_id": "...", "text": "да"}; '
        f"see messages at GET {url}/v1/sandbox/messages"
    )


if __name__ == "__main__":
    app()
