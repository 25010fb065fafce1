"""aiogram Routers, one module per audience. `build_router()` assembles them."""

from aiogram import Router

from handlers import (alarms, campaigns, common, patrol, resident, spot_check, supervision, supervision_cases,
                      supervisor, unanswered, worker)


def build_router() -> Router:
    root = Router(name="onegrid")
    # Staff routers first: their filters claim staff updates; the resident router takes the rest.
    root.include_router(supervision.build_router())
    root.include_router(supervision_cases.build_router())
    root.include_router(supervisor.build_router())
    root.include_router(alarms.build_router())  # welfare checks: an outcome button, then the location on site
    root.include_router(spot_check.build_router())  # before worker: a pending check claims its photo/location
    root.include_router(campaigns.build_router())  # before worker: a place being checked claims its photo/location
    root.include_router(worker.build_router())
    root.include_router(patrol.build_router())  # before resident: a worker's /report is a patrol report
    root.include_router(common.build_router())
    root.include_router(resident.build_router())
    root.include_router(unanswered.build_router())  # last: any button nobody took still gets an answer
    return root
