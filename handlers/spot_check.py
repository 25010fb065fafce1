"""Spot checks (不定时抽查): the on-duty worker answers with a fresh photo and a live location."""

from aiogram import Router


def build_router() -> Router:
    return Router(name="spot_check")
