"""The scheduled job of warnings and campaigns with a replaceable clock: a campaign ends at its end time once
(its supervisors get the summary, answers are refused after), and reminders stop at WARNING_REMINDER_MAX."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from models.campaigns import Campaign, CampaignPlace, CampaignStatus, WarningLevel
from services import campaign_answers, campaigns, warnings
from services.campaign_import import PlaceIn
from tests.worker_support import GRID, STREET, add_supervisor, add_worker, make_ctx, point_in, queued


def test_a_campaign_ends_at_its_end_time_once(db, clock, tmp_path) -> None:
    ctx = make_ctx(db.sessions, clock, tmp_path)
    add_supervisor(db.sessions, clock.now(), 8801, name="Boss")
    worker = add_worker(db.sessions, clock.now(), 8802)
    lat, lon = point_in(GRID)
    summary = campaigns.create_campaign(ctx, name="Night check", area_code=STREET, checklist=["Lights on"],
                                        places=[PlaceIn("Gate", lat, lon), PlaceIn("Yard", lat, lon)],
                                        ends_at=clock.now() + timedelta(hours=2))
    clock.advance(minutes=119)
    assert campaigns.tick(ctx) == 0
    clock.advance(minutes=1)
    assert campaigns.tick(ctx) == 1
    assert campaigns.tick(ctx) == 0  # ended once
    with db.sessions() as s:
        assert s.get(Campaign, summary.id).status == CampaignStatus.ENDED
        place = s.exec(select(CampaignPlace)).first()
    texts = [row.payload.get("text", "") for row in queued(db.sessions, 8801)]
    assert texts[-1] == "🏁 Campaign «Night check» ended: 0 of 2 checked, 0 with problems.\nNot checked: Gate, Yard"
    outcome = campaign_answers.answer_item(ctx, worker_id=worker, place_id=place.id, index=0, ok=True)
    assert outcome is campaign_answers.AnswerOutcome.ENDED


def test_reminders_stop_at_the_maximum(db, clock, tmp_path) -> None:
    ctx = make_ctx(db.sessions, clock, tmp_path, warning_reminder_minutes=5, warning_reminder_max=2)
    add_worker(db.sessions, clock.now(), 8811)
    issued = warnings.issue_warning(ctx, area_code=GRID, level=WarningLevel.YELLOW, text="Heavy rain")
    assert issued.recipients == 1
    reminded = []
    for _ in range(4):
        clock.advance(minutes=5)
        reminded.append(warnings.remind_due(ctx))
    assert reminded == [1, 1, 0, 0]
    texts = [row.payload["text"] for row in queued(db.sessions, 8811)]
    assert len(texts) == 3 and texts[2].startswith("⏰ Reminder 2: you have not acknowledged")
