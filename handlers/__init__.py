"""aiogram Routers, one module per audience. `build_router()` assembles them."""

from aiogram import Router


def build_router() -> Router:
    from handlers import common

    root = Router(name="onegrid")
    root.include_router(common.build_router())
    return root
