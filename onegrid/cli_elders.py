"""`onegrid elders` (the elder roster) and `onegrid roster` (the round-the-clock duty roster, the 居委会).

Personal data is masked unless `--pii` is given, as in the API without the `pii` scope.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from onegrid.cli_support import open_store
from onegrid.settings import Settings
from services import duty_roster, elders, welfare

elders_cli = typer.Typer(help="The elder roster (独居老人) for welfare checks: import from CSV, list.",
                         no_args_is_help=True)
roster_cli = typer.Typer(help="The round-the-clock duty roster per street or grid, and the 居委会 contacts.",
                         no_args_is_help=True)


def _ctx():  # noqa: ANN202
    app = open_store(Settings())
    app.ctx.grid_map.rebuild(app.ctx.sessions)  # imports may place elders by their location
    return app.ctx


def _fail(message: str) -> None:
    typer.secho(message, err=True, fg=typer.colors.RED)
    raise typer.Exit(code=1)


@elders_cli.command("import")
def elders_import(file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)]) -> None:
    """Import elders from a CSV (columns: name,address,grid,lat,lon,devices,key_holder_name,key_holder_phone,
    contacts,consent_by,consent_at). All rows or none: every bad row is listed with its line."""
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        _fail(f"{file}: not UTF-8 text; save the sheet as CSV UTF-8")
    try:
        count = elders.import_rows(_ctx(), principal=None, text=text)
    except elders.ElderInvalid as exc:
        for p in exc.problems:
            where = f"line {p.line}: " if p.line else ""
            typer.secho(f"{file.name}: {where}{p.field}: {p.detail}", err=True, fg=typer.colors.RED)
        lines = sorted({p.line for p in exc.problems if p.line})
        _fail(f"nothing imported: {len(lines) or 1} bad row(s); fix them and import the file again")
    typer.echo(f"imported {count} elder(s)")


@elders_cli.command("list")
def elders_list(grid: Annotated[str | None, typer.Option(help="Only this grid")] = None,
                pii: Annotated[bool, typer.Option("--pii", help="Show personal data unmasked")] = False) -> None:
    """Current elders on the roster, one per line (masked without --pii)."""
    rows = elders.list_current(_ctx(), principal=None, grid_code=grid)
    for elder, devices in rows:
        view = elders.elder_view(elder, devices, pii=pii)
        kit = ", ".join(f"{d['type']}:{d['device_id']}" for d in view["devices"])
        contacts = "; ".join(f"{c['name']} {c['phone']}{' (told)' if c['notify'] else ''}" for c in view["contacts"])
        typer.echo(f"{view['id']:>5}  {view['grid_code']:14} {view['name']:8} {view['address']}  [{kit}]  "
                   f"key: {view['key_holder']['name']} {view['key_holder']['phone']}  family: {contacts or '—'}")
    typer.echo(f"{len(rows)} elder(s)", err=True)


@elders_cli.command("remove")
def elders_remove(elder_id: int) -> None:
    """Take an elder off the roster (their data is emptied after ONEGRID_ELDER_RETENTION_DAYS)."""
    try:
        elders.end(_ctx(), principal=None, elder_id=elder_id)
    except elders.ElderNotFound:
        _fail(f"no current elder {elder_id}")
    typer.echo(f"elder {elder_id} removed from the roster")


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


@roster_cli.command("add")
def roster_add(area: Annotated[str, typer.Argument(help="Street or grid code")],
               person_id: Annotated[int, typer.Argument(help="Id of an active grid worker")],
               days: Annotated[str, typer.Argument(help="mon-fri, sat,sun, daily or 1-7")],
               start: Annotated[str, typer.Argument(help="HH:MM local time")],
               end: Annotated[str, typer.Argument(help="HH:MM; at or before START runs past midnight")]) -> None:
    """Put a worker on call for an area at these hours."""
    try:
        shift = duty_roster.add_shift(_ctx(), principal=None, data=duty_roster.ShiftInput(
            area_code=area, person_id=person_id, weekdays=duty_roster.parse_weekdays(days), start=start, end=end))
    except duty_roster.RosterError as exc:
        _fail(str(exc))
    typer.echo(f"shift {shift.id}: person {person_id} on call for {area}, {days} {start}-{end}")


@roster_cli.command("list")
def roster_list(area: Annotated[str | None, typer.Argument(help="Only this area")] = None) -> None:
    """The shifts, per area."""
    names = list(duty_roster.DAYS)
    for s in duty_roster.list_shifts(_ctx(), principal=None, area_code=area):
        days = ",".join(names[d] for d in s.weekdays)
        typer.echo(f"{s.id:>5}  {s.area_code:14} person {s.person_id:<6} {days:27} "
                   f"{_hhmm(s.start_minute)}-{_hhmm(s.end_minute)}")


@roster_cli.command("remove")
def roster_remove(shift_id: int) -> None:
    try:
        duty_roster.remove_shift(_ctx(), principal=None, shift_id=shift_id)
    except duty_roster.ShiftNotFound:
        _fail(f"no shift {shift_id}")
    typer.echo(f"shift {shift_id} removed")


@roster_cli.command("gaps")
def roster_gaps() -> None:
    """Look for gaps now (the scheduler does this every minute) and alert the street supervisors of new ones."""
    typer.echo(f"{duty_roster.check_gaps(_ctx())} new gap(s) reported")


@roster_cli.command("committee")
def roster_committee(area: Annotated[str, typer.Argument(help="Street (or grid) code")],
                     name: Annotated[str, typer.Argument(help="e.g. 江苏路居委会")],
                     phone: Annotated[str, typer.Option(help="Duty phone")] = "",
                     chat_id: Annotated[int | None, typer.Option(help="Telegram chat that gets escalations")] = None,
                     lang: Annotated[str, typer.Option(help="zh_CN or en")] = "zh_CN") -> None:
    """Record the 居委会 (neighbourhood committee) of a street: welfare-check escalations reach it."""
    try:
        row = welfare.add_contact(_ctx(), area_code=area, name=name, phone=phone, chat_id=chat_id, locale=lang)
    except ValueError as exc:
        _fail(str(exc))
    typer.echo(f"committee contact {row.id} for {area}" + ("" if chat_id else " (no chat: it is not messaged)"))
