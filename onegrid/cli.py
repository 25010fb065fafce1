"""`onegrid` command line: serve, migrate, load the map and the category catalogue."""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from sqlmodel import func, select

from bot.factory import create_bot
from models.tables import Area, Category
from onegrid.app import serve as serve_app
from onegrid.cli_elders import elders_cli, roster_cli
from onegrid.cli_campaigns import campaign_cli
from onegrid.cli_support import OneLineErrors, catalogue_summary, import_summary, open_store
from onegrid.logs import configure_logging, scrub
from onegrid.invite_sheet import SheetEntry, describe_problem, invitation_sheet, links_csv
from onegrid.map_preview import preview_svg, summary as map_summary
from onegrid.settings import Settings
from services.api_keys import ApiKeyError, create_key, list_keys, revoke_key
from services.area_preview import preview_import
from services.areas import AreaImportError, import_geojson
from services.catalogue import CatalogueError, apply_catalogue, load_catalogue, set_category_fields
from services.db import upgrade
from services.invitation_bulk import BulkInvitationRefused, InvitedStaff, invite_staff, read_staff_csv
from services.invitations import InvitationError, create_invitation, invitation_link
from services.people import RosterError, bind_wecom_userid
from services.upstream import dead_letters, retry_dead_letters

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEMO_MAP = PROJECT_ROOT / "data" / "shanghai-demo-grids.geojson"

cli = typer.Typer(help="OneGrid: the chat front end for city grid management.", no_args_is_help=True,
                  add_completion=False, cls=OneLineErrors)
grids_cli = typer.Typer(help="The grid map: import areas from GeoJSON.", no_args_is_help=True)
categories_cli = typer.Typer(help="The category catalogue.", no_args_is_help=True)
cli.add_typer(grids_cli, name="grids")
cli.add_typer(categories_cli, name="categories")
apikey_cli = typer.Typer(help="API keys: create, revoke, list (secrets are shown once, stored hashed).",
                         no_args_is_help=True)
outbox_cli = typer.Typer(help="The outbox to the upstream platform: dead letters.", no_args_is_help=True)
cli.add_typer(apikey_cli, name="apikey")
cli.add_typer(outbox_cli, name="outbox")
cli.add_typer(elders_cli, name="elders")
cli.add_typer(roster_cli, name="roster")
cli.add_typer(campaign_cli, name="campaign")


@cli.callback()
def _options(ctx: typer.Context,
             debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an error")] = False) -> None:
    """OneGrid: the chat front end for city grid management."""
    ctx.obj = {"debug": debug}


def _settings() -> Settings:
    return Settings()


def _ctx():  # noqa: ANN202
    """The service context on a store at the schema head (onegrid/cli_support.py: open_store)."""
    return open_store(_settings()).ctx


def _fail(message: str) -> None:
    typer.secho(message, err=True, fg=typer.colors.RED)
    raise typer.Exit(code=1)


@cli.command()
def migrate(revision: Annotated[str, typer.Option(help="Target revision")] = "head") -> None:
    """Create or upgrade the database schema (Alembic)."""
    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.effective_database_url, revision)
    typer.echo(f"schema: at {revision} · store: {scrub(settings.effective_database_url)}")


@grids_cli.command("import")
def grids_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only report what would change and draw the map; write nothing")] = False,
    preview: Annotated[Path | None, typer.Option(help="With --dry-run: where to write the SVG map (default FILE-preview.svg beside FILE)")] = None,
    gap_threshold: Annotated[float, typer.Option(help="With --dry-run: report gaps larger than this many m²")] = 100.0,
) -> None:
    """Import (or update) areas from a GeoJSON FeatureCollection; all or nothing."""
    ctx = _ctx()
    if dry_run:
        report = preview_import(ctx.sessions, file, gap_threshold_m2=gap_threshold)
        target = preview or file.with_name(f"{file.stem}-preview.svg")
        target.write_text(preview_svg(report), encoding="utf-8")
        for line in [*map_summary(report, str(file)), f"preview: {target}"]:
            typer.echo(line)
        raise typer.Exit(code=0 if report.would_import else 1)
    try:
        report = import_geojson(ctx.sessions, file, now=ctx.clock.now())
    except AreaImportError as exc:
        _fail(_import_refused(exc))
    typer.echo(import_summary(report))


def _import_refused(exc: AreaImportError) -> str:
    """The refusal and its first problem in one line; the rest are listed below it."""
    more = f"; {len(exc.problems) - 1} more below" if len(exc.problems) > 1 else ""
    lines = [f"area import refused (nothing imported): {exc.problems[0]}{more}. Fix the file and import again."]
    lines += [f"  {p}" for p in exc.problems[1:20]]
    return "\n".join(lines)


@categories_cli.command("load")
def categories_load(file: Annotated[Path | None, typer.Argument(exists=True, dir_okay=False)] = None) -> None:
    """Load the category catalogue (default: the built-in data/categories.json)."""
    ctx = _ctx()
    try:
        result = apply_catalogue(ctx.sessions, load_catalogue(file))
    except CatalogueError as exc:
        _fail(str(exc))
    typer.echo(catalogue_summary(result))


@categories_cli.command("list")
def categories_list() -> None:
    """Print the categories in the store."""
    ctx = _ctx()
    with ctx.sessions() as session:
        for c in session.exec(select(Category).order_by(Category.kind, Category.code)):
            flag = "" if c.active else " (inactive)"
            typer.echo(f"{c.code:32} {c.name} / {c.name_en} → {c.department_code} "
                       f"accept {_sla(c.accept_sla_minutes, c.accept_sla_unit)} "
                       f"handle {_sla(c.handle_sla_minutes, c.handle_sla_unit)}{flag}")


def _sla(amount: int, unit: str) -> str:
    """30 clock minutes → "30m", 2 working hours → "2 working h", 3 working days → "3 working d"."""
    return {"clock_minutes": f"{amount}m", "minutes": f"{amount} working min",
            "hours": f"{amount} working h", "days": f"{amount} working d"}.get(unit, f"{amount} {unit}")


@categories_cli.command("set")
def categories_set(
    code: str,
    assignments: Annotated[list[str], typer.Argument(help="FIELD=VALUE pairs, e.g. handle_sla_minutes=3 handle_sla_unit=days")],
) -> None:
    """Change fields of one category, e.g. `onegrid categories set exposed_garbage handle_sla_minutes=120`."""
    fields: dict[str, str] = {}
    for item in assignments:
        name, sep, value = item.partition("=")
        if not sep:
            _fail(f"expected FIELD=VALUE, got {item!r}")
        fields[name.strip()] = value.strip()
    try:
        set_category_fields(_ctx().sessions, code, **fields)
    except CatalogueError as exc:
        _fail(str(exc))
    typer.echo(f"updated {code}")


def _bot_username(settings: Settings) -> str:
    """ONEGRID_BOT_USERNAME, else the bot's own answer to getMe (needs ONEGRID_BOT_TOKEN)."""
    if settings.bot_username:
        return settings.bot_username.lstrip("@")
    if settings.bot_token is None:
        _fail("Set ONEGRID_BOT_USERNAME (or ONEGRID_BOT_TOKEN, to ask Telegram) so the link can name the bot.")
    async def ask() -> str | None:
        bot = create_bot(settings.bot_token.get_secret_value(), api_url=settings.telegram_api_url, timeout=15)
        try:
            return (await bot.get_me()).username
        finally:
            await bot.session.close()

    try:
        username = asyncio.run(ask())
    except Exception as exc:  # noqa: BLE001 - any failure: say what to do instead
        _fail(f"Could not ask Telegram for the bot's username ({type(exc).__name__}: {exc}); "
              "set ONEGRID_BOT_USERNAME instead.")
    if not username:
        _fail("The bot has no username; set ONEGRID_BOT_USERNAME.")
    return username


@cli.command()
def invite(
    role: Annotated[str | None, typer.Option(help="worker or supervisor")] = None,
    area: Annotated[str | None, typer.Option(help="Area code (grid, street, district), e.g. SH-HP-01-001")] = None,
    department: Annotated[str | None, typer.Option(help="Department code; required for workers")] = None,
    hours: Annotated[int | None, typer.Option(help="Hours the link stays valid (default ONEGRID_INVITATION_TTL_HOURS)")] = None,
    csv_file: Annotated[Path | None, typer.Option("--csv", exists=True, dir_okay=False, help="Staff list with columns name,role,area,department,phone: one link per row, all or none")] = None,
    out: Annotated[Path | None, typer.Option(help="With --csv: folder for the links CSV and the printable sheet (default: beside the CSV)")] = None,
    lang: Annotated[str | None, typer.Option(help="With --csv: language of the printable sheet (zh_CN or en; default ONEGRID_DEFAULT_LOCALE)")] = None,
    wecom: Annotated[bool, typer.Option(help="Print the code to send to the OneGrid app in WeCom / 政务微信")] = False,
) -> None:
    """Print a one-time, expiring invitation link that binds a Telegram account to a staff role
    (with --wecom: the code a WeCom member sends to the OneGrid app).

    With --csv, invite a whole staff list: every row is checked first, then one link per person goes
    to STEM-invitations.csv and a printable STEM-invitations.html (one QR code per person).
    """
    settings = _settings()
    if csv_file is not None:
        return invite_bulk(settings, csv_file, out or csv_file.parent, lang or settings.default_locale, hours)
    if role is None or area is None:
        _fail("give --role and --area (or --csv FILE for a staff list)")
    # Before issuing, so a failure leaves no unusable invitation.
    username = None if wecom else _bot_username(settings)
    ctx = _ctx()
    try:
        issued = create_invitation(ctx, role=role, area_code=area, department_code=department,
                                   ttl=timedelta(hours=hours) if hours else None)
    except InvitationError as exc:
        _fail(str(exc))
    typer.echo(issued.token if username is None else invitation_link(username, issued.token))
    typer.echo(f"{issued.role.value} of {issued.area_code}"
               + (f" ({issued.department_code})" if issued.department_code else "")
               + f"; works once, until {issued.expires_at:%Y-%m-%d %H:%M} UTC", err=True)


def invite_bulk(settings: Settings, csv_file: Path, out: Path, locale: str, hours: int | None) -> None:
    """`onegrid invite --csv`: check every row, then write the links and the sheet, or nothing at all."""
    username = _bot_username(settings)
    links, sheet = out / f"{csv_file.stem}-invitations.csv", out / f"{csv_file.stem}-invitations.html"

    def deliver(invited: list[InvitedStaff]) -> None:  # inside the transaction: a failed write issues nothing
        entries = [SheetEntry(i.row.name, i.issued.role.value, i.issued.area_code, i.area_name,
                              i.row.department, i.department_name, i.row.phone,
                              invitation_link(username, i.issued.token), i.issued.expires_at) for i in invited]
        out.mkdir(parents=True, exist_ok=True)
        links.write_text(links_csv(entries), encoding="utf-8")
        sheet.write_text(invitation_sheet(entries, locale=locale, bot_username=username), encoding="utf-8")

    try:
        invited = invite_staff(_ctx(), read_staff_csv(csv_file), ttl=timedelta(hours=hours) if hours else None,
                               deliver=deliver, locale=locale)
    except BulkInvitationRefused as exc:
        for p in exc.problems:
            typer.secho(describe_problem(p.line, p.kind.value, p.value, p.detail), err=True, fg=typer.colors.RED)
        _fail(f"{len(exc.problems)} problem(s) in {csv_file}; nobody was invited. Fix the rows and run again.")
    except OSError as exc:
        _fail(f"could not write the outputs ({exc}); nobody was invited.")
    typer.echo(f"invited {len(invited)} people: links in {links}, printable sheet in {sheet}")
    typer.echo("The links work once each; keep both files as safe as passwords.", err=True)


@cli.command("wecom-bind")
def wecom_bind(person_id: int, userid: str,
               keep_telegram: Annotated[bool, typer.Option(help="Bind, but keep sending to Telegram")] = False) -> None:
    """The roster: bind a person to their WeCom / 政务微信 userid; their messages then go to WeCom."""
    try:
        bind_wecom_userid(_ctx(), person_id=person_id, wecom_userid=userid, use_it=not keep_telegram)
    except RosterError as exc:
        _fail(str(exc))
    typer.echo(f"person {person_id} is WeCom user {userid}" + ("" if keep_telegram else "; messages go to WeCom"))


@apikey_cli.command("create")
def apikey_create(
    name: Annotated[str, typer.Argument(help="Who uses the key, e.g. 'Huangpu camera platform'")],
    scope: Annotated[list[str], typer.Option(help="read, write, intake, admin or pii; repeat for several")],
    area: Annotated[str | None, typer.Option(help="Area code the key is limited to (default: everywhere)")] = None,
    acts_as: Annotated[str, typer.Option(help="Lifecycle role of the key's actions")] = "dispatcher",
    rate: Annotated[int | None, typer.Option(help="Requests per minute (default: the setting)")] = None,
) -> None:
    """Create an API key and print its token once."""
    try:
        row, token = create_key(_ctx(), name=name, scopes=scope, area_code=area, acts_as=acts_as,
                                rate_per_minute=rate)
    except ApiKeyError as exc:
        _fail(str(exc))
    typer.echo(f"key {row.key_id} ({', '.join(row.scopes)}; area {row.area_code or 'all'})")
    typer.echo(token)
    typer.echo("Store the token now: it is not shown again.", err=True)


@apikey_cli.command("revoke")
def apikey_revoke(key_id: str) -> None:
    """Revoke a key by its id (the part after og_)."""
    try:
        revoke_key(_ctx(), key_id=key_id)
    except ApiKeyError as exc:
        _fail(str(exc))
    typer.echo(f"revoked {key_id}")


@apikey_cli.command("list")
def apikey_list() -> None:
    """List keys (never their secrets)."""
    for row in list_keys(_ctx()):
        state = f"revoked {row.revoked_at:%Y-%m-%d}" if row.revoked_at else "active"
        used = f"{row.last_used_at:%Y-%m-%d %H:%M}" if row.last_used_at else "never"
        typer.echo(f"{row.key_id}  {row.name[:40]:40} {','.join(row.scopes):24} area={row.area_code or 'all':12} "
                   f"{row.acts_as:10} {state}, last used {used}")


@outbox_cli.command("dead-letters")
def outbox_dead_letters(limit: Annotated[int, typer.Option(help="At most this many")] = 100) -> None:
    """List events the relay gave up on (oldest first), with their last error."""
    rows = dead_letters(_ctx(), limit=limit)
    for row in rows:
        typer.echo(f"{row.id}\t{row.topic}\tcase {row.case_id}\t{row.attempts} tries\t{(row.last_error or '')[:120]}")
    typer.echo(f"{len(rows)} dead letter(s)", err=True)


@outbox_cli.command("retry")
def outbox_retry(
    ids: Annotated[list[int] | None, typer.Argument(help="Outbox ids; none with --all")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Retry every dead letter")] = False,
) -> None:
    """Queue dead letters again with a fresh try budget."""
    if not ids and not all_:
        _fail("give outbox ids, or --all")
    n = retry_dead_letters(_ctx(), ids=None if all_ else list(ids or []))
    typer.echo(f"{n} dead letter(s) queued again")


@cli.command()
def setup() -> None:
    """Migrate, then load the demo map and the catalogue if the store has none (what `make run` does)."""

    migrate("head")
    ctx = _ctx()
    with ctx.sessions() as session:
        areas = session.exec(select(func.count()).select_from(Area)).one()
        categories = session.exec(select(func.count()).select_from(Category)).one()
    if not categories:
        typer.echo(catalogue_summary(apply_catalogue(ctx.sessions, load_catalogue())))
    if not areas:
        typer.echo(f"demo map: {import_summary(import_geojson(ctx.sessions, DEMO_MAP, now=ctx.clock.now()))}")
    if categories and areas:
        typer.echo(f"nothing loaded: the store already has {categories:,} categories and {areas:,} areas")


@cli.command()
def serve() -> None:
    """Run the API, the scheduler and (with ONEGRID_BOT_TOKEN) the Telegram bot in one process."""
    settings = _settings()
    app = open_store(settings)  # a store it cannot use is refused in one line, before any log line
    configure_logging(settings)  # JSON lines off a terminal, readable lines on one (onegrid/logs.py)
    # uvicorn re-raises the signal that stopped it; treat SIGTERM like Ctrl-C so a stop is a clean exit.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(serve_app(app))
    except KeyboardInterrupt:
        typer.echo("OneGrid stopped.")


def _loop_factory():  # noqa: ANN202
    """uvloop's event loop where it is installed (a dependency except on Windows): less CPU per API request
    than asyncio's own loop (docs/BENCHMARKS.md); asyncio's loop elsewhere."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def main() -> None:
    """The `onegrid` entry point: every logger of a command scrubbed (serve configures its own format)."""
    try:
        settings = Settings()
    except Exception:  # noqa: BLE001 - the command itself reports the bad setting in one line
        settings = Settings.model_construct()
    configure_logging(settings, level=logging.WARNING)
    cli()


if __name__ == "__main__":
    main()
