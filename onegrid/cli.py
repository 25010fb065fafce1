"""`onegrid` command line: serve, migrate, load the map and the category catalogue."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from pathlib import Path
from typing import Annotated

import typer

from onegrid.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEMO_MAP = PROJECT_ROOT / "data" / "shanghai-demo-grids.geojson"

cli = typer.Typer(help="OneGrid: the chat front end for city grid management.", no_args_is_help=True,
                  add_completion=False)
grids_cli = typer.Typer(help="The grid map: import areas from GeoJSON.", no_args_is_help=True)
categories_cli = typer.Typer(help="The category catalogue.", no_args_is_help=True)
cli.add_typer(grids_cli, name="grids")
cli.add_typer(categories_cli, name="categories")


def _settings() -> Settings:
    return Settings()


def _ctx():  # noqa: ANN202
    from onegrid.app import build

    return build(_settings()).ctx


def _fail(message: str) -> None:
    typer.secho(message, err=True, fg=typer.colors.RED)
    raise typer.Exit(code=1)


@cli.command()
def migrate(revision: Annotated[str, typer.Option(help="Target revision")] = "head") -> None:
    """Create or upgrade the database schema (Alembic)."""
    from services.db import upgrade

    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.effective_database_url, revision)
    typer.echo(f"schema at {revision}: {settings.effective_database_url}")


@grids_cli.command("import")
def grids_import(file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)]) -> None:
    """Import (or update) areas from a GeoJSON FeatureCollection; all or nothing."""
    from services.areas import AreaImportError, import_geojson

    ctx = _ctx()
    try:
        report = import_geojson(ctx.sessions, file, now=ctx.clock.now())
    except AreaImportError as exc:
        _fail(str(exc))
    typer.echo(str(report))


@categories_cli.command("load")
def categories_load(file: Annotated[Path | None, typer.Argument(exists=True, dir_okay=False)] = None) -> None:
    """Load the category catalogue (default: the built-in data/categories.json)."""
    from services.catalogue import CatalogueError, apply_catalogue, load_catalogue

    ctx = _ctx()
    try:
        result = apply_catalogue(ctx.sessions, load_catalogue(file))
    except CatalogueError as exc:
        _fail(str(exc))
    typer.echo(json.dumps(result, ensure_ascii=False))


@categories_cli.command("list")
def categories_list() -> None:
    """Print the categories in the store."""
    from sqlmodel import select

    from models.tables import Category

    ctx = _ctx()
    with ctx.sessions() as session:
        for c in session.exec(select(Category).order_by(Category.kind, Category.code)):
            flag = "" if c.active else " (inactive)"
            typer.echo(f"{c.code:32} {c.name} / {c.name_en} → {c.department_code} "
                       f"accept {c.accept_sla_minutes}m handle {c.handle_sla_minutes}m{flag}")


@categories_cli.command("set")
def categories_set(
    code: str,
    assignments: Annotated[list[str], typer.Argument(help="FIELD=VALUE pairs, e.g. handle_sla_minutes=120")],
) -> None:
    """Change fields of one category, e.g. `onegrid categories set exposed_garbage handle_sla_minutes=120`."""
    from services.catalogue import CatalogueError, set_category_fields

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


@cli.command()
def setup() -> None:
    """Migrate, then load the demo map and the catalogue if the store has none (what `make run` does)."""
    from sqlmodel import func, select

    from models.tables import Area, Category
    from services.areas import import_geojson
    from services.catalogue import apply_catalogue, load_catalogue

    migrate("head")
    ctx = _ctx()
    with ctx.sessions() as session:
        areas = session.exec(select(func.count()).select_from(Area)).one()
        categories = session.exec(select(func.count()).select_from(Category)).one()
    if not categories:
        typer.echo(f"categories: {apply_catalogue(ctx.sessions, load_catalogue())}")
    if not areas:
        typer.echo(f"demo map: {import_geojson(ctx.sessions, DEMO_MAP, now=ctx.clock.now())}")


@cli.command()
def serve() -> None:
    """Run the API, the scheduler and (with ONEGRID_BOT_TOKEN) the Telegram bot in one process."""
    from onegrid.app import build, serve as serve_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # uvicorn re-raises the signal that stopped it; treat SIGTERM like Ctrl-C so a stop is a clean exit.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        asyncio.run(serve_app(build(_settings())))
    except KeyboardInterrupt:
        typer.echo("OneGrid stopped.")


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
