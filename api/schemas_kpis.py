"""What `GET /api/v1/kpis` answers: 综合评价 of an area and period, with the patrol share (主动发现)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class KpiGrid(BaseModel):
    grid_code: str
    open_overdue: int = Field(description="Open cases of the grid past their handling deadline now")
    due: int = Field(description="Cases of the grid whose handling deadline falls in the period")
    closed_of_due: int = Field(description="Of those, closed by the end of the period")
    closure_rate: float | None = Field(description="closed_of_due ÷ due; null when due is 0")


class KpiPatrolGrid(BaseModel):
    grid_code: str
    registered: int = Field(description="Cases of the grid registered in the period")
    patrol: int = Field(description="Of those, found by a grid worker on patrol (主动发现)")
    patrol_share: float | None = Field(description="patrol ÷ registered; null when registered is 0")


class KpiPatrolWorker(BaseModel):
    person_id: int
    name: str
    found: int = Field(description="Cases registered in the period that this worker found on patrol")
    cases: int = Field(description="Cases registered in the period this worker found or handles, each once")
    patrol_share: float | None = Field(description="found ÷ cases; null when cases is 0")


class KpiReport(BaseModel):
    """综合评价 of an area's subtree over [start, end). Cancelled and merged cases never count; a rate is
    null when its denominator is 0; times are hours."""

    area_code: str
    start: datetime
    end: datetime
    registered: int = Field(description="Cases created in the period")
    closed: int = Field(description="Cases whose (latest) closure falls in the period")
    due: int = Field(description="Cases whose handling deadline falls in the period")
    closed_of_due: int = Field(description="Due cases closed by the end of the period")
    closure_rate: float | None = Field(description="结案率: closed_of_due ÷ due")
    closed_on_time: int = Field(description="Closed cases closed no later than their handling deadline")
    on_time_rate: float | None = Field(description="按期结案率: closed_on_time ÷ closed")
    reworked: int = Field(description="Closed cases ever rejected at verification or reopened")
    rework_rate: float | None = Field(description="返工率: reworked ÷ closed")
    extended: int = Field(description="Closed cases with a granted extension")
    extension_rate: float | None = Field(description="延期率: extended ÷ closed")
    accept_mean_h: float | None = Field(description="First accept − creation, cases registered in the period")
    accept_p90_h: float | None = Field(description="90th percentile (nearest rank) of the same")
    close_mean_h: float | None = Field(description="Closure − creation, cases closed in the period")
    close_p90_h: float | None = Field(description="90th percentile (nearest rank) of the same")
    ratings: int = Field(description="Residents' ratings (1-5) given in the period")
    satisfaction_mean: float | None = Field(description="Mean of those ratings")
    answers: int = Field(description="回访 answers in the period (fixed or not, or a rating)")
    dissatisfied: int = Field(description="Answers saying not fixed, or rating 2 or less")
    dissatisfaction_rate: float | None = Field(description="回访不满意率: dissatisfied ÷ answers")
    worst_grids: list[KpiGrid] = Field(description="Grids by overdue open cases now, then lowest closure rate")
    patrol: int = Field(0, description="主动发现: cases registered in the period found by a grid worker on patrol")
    patrol_share: float | None = Field(None, description="patrol ÷ registered")
    patrol_by_grid: list[KpiPatrolGrid] = Field(default_factory=list,
                                                description="Each grid with cases registered in the period, "
                                                            "most found on patrol first")
    patrol_by_worker: list[KpiPatrolWorker] = Field(default_factory=list,
                                                    description="Each worker with a case registered in the period, "
                                                                "most found on patrol first")
