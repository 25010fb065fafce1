"""What the `onegrid` commands print: short human summaries, and errors as one line with what to do next.

- `OneLineErrors` (the CLI's click group) turns any exception a command raises into one red line on
  stderr and exit code 1; `onegrid --debug …` shows the traceback instead.
- `open_store(settings)` builds OneGrid and refuses a store whose schema is not at the code's head,
  in one line naming the command to run. One case is migrated without asking: the embedded SQLite
  store (no ONEGRID_DATABASE_URL) when it has no tables at all, since creating a schema from nothing
  loses nothing. A store with data at an older revision is never migrated behind the operator's back.
"""

from __future__ import annotations

from typing import Any

import click
import sqlalchemy as sa
import typer
from pydantic import ValidationError
from typer.core import TyperGroup

from onegrid.app import ConfigurationError, OneGrid, build
from onegrid.logs import scrub
from onegrid.settings import Settings
from services.area_import import ImportReport
from services.db import schema_state, upgrade

DEBUG_HINT = "run again with --debug for the traceback"


class StoreNotReady(RuntimeError):
    """The store cannot be used as it is; the message says what is wrong and what to run."""


class OneLineErrors(TyperGroup):
    """Any exception of a command: one line on stderr, exit code 1; the traceback only with --debug."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, typer.Exit, click.ClickException, click.Abort, KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:
            if (ctx.find_root().obj or {}).get("debug"):
                raise
            typer.secho(f"error: {describe_error(exc)}", err=True, fg=typer.colors.RED)
            raise typer.Exit(code=1) from None


def describe_error(exc: BaseException) -> str:
    """One line (scrubbed of secrets) saying what went wrong and, where known, what to do."""
    if isinstance(exc, StoreNotReady | ConfigurationError):
        return scrub(str(exc))
    if isinstance(exc, ValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        name = "_".join(str(p) for p in first.get("loc", ())).upper()
        return scrub(f"setting ONEGRID_{name}: {first.get('msg', 'invalid')}; fix it in the environment or .env")
    if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError):
        reason = _first_line(str(getattr(exc, "orig", None) or exc))
        if "no such table" in reason or "does not exist" in reason:
            return scrub(f"the store's schema is missing a table ({reason}): run `onegrid migrate`")
        return scrub(f"the store does not answer ({reason}): check ONEGRID_DATABASE_URL and that the database runs")
    return scrub(f"{type(exc).__name__}: {_first_line(str(exc))} ({DEBUG_HINT})")


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:300]


def open_store(settings: Settings, *, quiet: bool = False) -> OneGrid:
    """OneGrid built from `settings`, its store answering and at the schema head (see the module docstring)."""
    app = build(settings)
    state = schema_state(app.engine)
    if state.at_head:
        return app
    if state.empty and settings.database_url is None and not sa.inspect(app.engine).get_table_names():
        upgrade(settings.effective_database_url)
        if not quiet:
            typer.echo(f"schema: created in the new embedded store {settings.effective_database_url}", err=True)
        return app
    app.engine.dispose()
    raise StoreNotReady(state.problem or "the store is not ready: run `onegrid migrate`")


# ---------------------------------------------------------------------------- summaries


def _counts(parts: list[tuple[int, str]]) -> str:
    shown = [f"{n:,} {word}" for n, word in parts if n]
    return ", ".join(shown) or "none"


def catalogue_summary(counts: dict[str, int]) -> str:
    """`apply_catalogue`'s counts as "categories: 28 created · departments: 15 created"."""
    cat_unchanged = counts["categories"] - counts["categories_created"] - counts["categories_updated"]
    dep_unchanged = counts["departments"] - counts["departments_created"] - counts["departments_updated"]
    categories = _counts([(counts["categories_created"], "created"), (counts["categories_updated"], "updated"),
                          (counts["categories_deactivated"], "deactivated"), (cat_unchanged, "unchanged")])
    departments = _counts([(counts["departments_created"], "created"), (counts["departments_updated"], "updated"),
                           (dep_unchanged, "unchanged")])
    return f"categories: {categories} · departments: {departments}"


LEVELS = ("city", "district", "street", "grid")


def import_summary(report: ImportReport) -> str:
    """An area import as "areas: 2,197 created (city 1 · district 16 · street 200 · grid 1,980)"."""
    levels = sorted(report.by_level.items(), key=lambda kv: (LEVELS.index(kv[0]) if kv[0] in LEVELS else 9, kv[0]))
    by_level = " · ".join(f"{level} {n:,}" for level, n in levels)
    text = f"areas: {_counts([(report.created, 'created'), (report.updated, 'updated'), (report.unchanged, 'unchanged')])}"
    if by_level:
        text += f" ({by_level})"
    if report.grids_changed and report.grid_map_version is not None:
        text += f"; grid map version {report.grid_map_version}"
    return text
