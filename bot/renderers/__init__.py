"""The Telegram channel's renderers: each module turns one area's domain events into notification rows.

Each exports `RENDERERS`, a table of event type -> render functions `(session, ctx, event) -> None`;
onegrid/wiring.py joins them into the one table the services publish to.
"""
