"""`onegrid campaign import | end`: inspection campaigns (专项排查) from the command line."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from onegrid.cli_support import open_store
from onegrid.settings import Settings
from services.campaign_import import PlacesRefused, format_of, read_places
from services.campaigns import CampaignError, create_campaign, end_campaign

campaign_cli = typer.Typer(help="Inspection campaigns (专项排查): import a checklist of places, end one.",
                           no_args_is_help=True)


def _ctx():  # noqa: ANN202
    return open_store(Settings()).ctx


def _fail(message: str) -> None:
    typer.secho(message, err=True, fg=typer.colors.RED)
    raise typer.Exit(code=1)


@campaign_cli.command("import")
def campaign_import(
    file: Annotated[Path, typer.Argument(help="Places: GeoJSON Points (name, address) or CSV (name, lat, lon, address)")],
    name: Annotated[str, typer.Option("--name", help="The campaign's name, e.g. 台风前排查")],
    area: Annotated[str, typer.Option("--area", help="Area code (district, street or grid) the places lie in")],
    checklist: Annotated[str, typer.Option("--checklist", help='Items separated by ";", e.g. "排水畅通;围挡牢固"')],
    category: Annotated[str | None, typer.Option("--category", help="Category of the case a problem opens")] = None,
    ends_at: Annotated[str | None, typer.Option("--ends-at", help="End time, ISO 8601 with a timezone")] = None,
    drill: Annotated[bool, typer.Option("--drill", help="A drill (演练): labelled; its cases out of KPIs and sync")]
    = False,
) -> None:
    """Start a campaign: each place becomes an inspection task of its grid's on-duty workers."""
    end = None
    if ends_at:
        try:
            end = datetime.fromisoformat(ends_at)
        except ValueError:
            _fail(f"--ends-at {ends_at!r} is not an ISO 8601 time")
        if end.tzinfo is None:
            _fail("--ends-at needs a timezone, e.g. 2026-12-05T18:00:00+08:00")
    try:
        places = read_places(file.read_bytes(), fmt=format_of(file.name))
        summary = create_campaign(_ctx(), name=name, area_code=area, checklist=checklist.split(";"), places=places,
                                  drill=drill, ends_at=end, category_code=category)
    except (PlacesRefused, CampaignError) as exc:
        problems = exc.problems
        _fail(f"{file.name}: nothing imported, {len(problems)} problem(s): " + "; ".join(problems[:20]))
    typer.echo(f"campaign {summary.id} «{summary.name}»{' (drill)' if summary.drill else ''}: "
               f"{summary.progress.total} places in {summary.area_code}")


@campaign_cli.command("end")
def campaign_end(campaign_id: Annotated[int, typer.Argument(help="The campaign's id")]) -> None:
    """End a campaign; its supervisors get the summary."""
    try:
        summary = end_campaign(_ctx(), campaign_id=campaign_id)
    except CampaignError as exc:
        _fail(str(exc))
    progress = summary.progress
    typer.echo(f"campaign {summary.id} ended: {progress.checked} of {progress.total} checked, "
               f"{progress.problems} problems")
