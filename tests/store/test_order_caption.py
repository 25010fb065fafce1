"""The work order as a photo caption: within Telegram's 1,024 units, valid HTML, only the description cut.

The oracle is the Bot API emulator's own parser (bot/emulator/formatting.py), which answers 400 for
markup Telegram would refuse, and counts length as Telegram does (UTF-16 units, after parsing).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlmodel import select

from bot.emulator.formatting import format_text, utf16_len
from bot.renderers.work_text import CAPTION_MAX, fit_caption, order_caption, order_text, shorten
from models.tables import Case
from models.work import CaseTask
from services.context import ServiceContext
from tests.worker_support import add_worker, make_ctx, picture, report

# Descriptions as residents and machine sources write them: markup-like text, entities, emoji, CJK, newlines;
# a run of pieces repeated, so both short ones and ones far over the limit come up.
_PIECE = st.one_of(st.sampled_from(["<", ">", "&", '"', "'", " ", "\n", ";", "#", "垃圾桶", "🐀", "&amp;", "</a>",
                                    "<b>", "a", "é"]),
                   st.characters(blacklist_categories=("Cs", "Cc")))
DESCRIPTIONS = st.one_of(
    st.lists(_PIECE, max_size=60).map("".join),
    st.builds(lambda pieces, times: "".join(pieces) * times,
              st.lists(_PIECE, min_size=1, max_size=40), st.integers(min_value=10, max_value=300)))


@pytest.fixture
def ctx(db, clock, tmp_path) -> ServiceContext:
    return make_ctx(db.sessions, clock, tmp_path)


def parsed(html_text: str) -> str:
    """The caption as Telegram keeps it; raises (400 "can't parse entities") for broken HTML."""
    return format_text(html_text, "HTML").text


@pytest.fixture
def case_id(ctx, db, clock) -> int:
    """A photo case offered to one worker (made once per test; each example only rewords its description)."""
    add_worker(db.sessions, clock.now(), 801)
    return report(ctx, photo=picture(11)).id


def render(ctx: ServiceContext, db, case_id: int, description: str, locale: str, header: str,  # noqa: ANN001
           footer: str) -> tuple[str, str]:
    """(the caption, the order as a text message) of the case with `description` (nothing is stored)."""
    with db.sessions() as s:
        stored = s.get(Case, case_id)
        case = Case(**{name: getattr(stored, name) for name in Case.model_fields})  # detached copy
        case.description = description
        task = s.exec(select(CaseTask).where(CaseTask.case_id == case_id)).one()
        return (order_caption(s, ctx, case, task, locale, header=header, footer=footer),
                order_text(s, ctx, case, task, locale, header=header) + footer)


@hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(description=DESCRIPTIONS, locale=st.sampled_from(["en", "zh_CN"]), accepted=st.booleans())
def test_the_caption_fits_parses_and_cuts_only_the_description(ctx, db, case_id, description, locale,
                                                                accepted) -> None:
    description = description.replace("§", "")
    header = "✅ You accepted work order &lt;1&gt;" if accepted else "🆕 Work order"
    footer = "\n\nWhen the problem is solved, press Complete." if accepted else ""
    caption, full = render(ctx, db, case_id, description, locale, header, footer)

    text = parsed(caption)
    assert utf16_len(text) <= CAPTION_MAX
    if utf16_len(parsed(full)) <= CAPTION_MAX:
        event("fits whole")
        assert caption == full  # nothing is cut that need not be
        return
    event("description cut")
    # Everything around the description is as in the full order; the description is its start and "…".
    before, after = parsed(render(ctx, db, case_id, "§", locale, header, footer)[1]).split("§")
    assert text.startswith(before) and text.endswith(after)
    shown = text[len(before):len(text) - len(after)]
    assert shown.endswith("…") and description.startswith(shown[:-1])


@given(text=DESCRIPTIONS, limit=st.integers(min_value=1, max_value=1500))
def test_shorten_keeps_a_prefix_within_the_limit(text: str, limit: int) -> None:
    short = shorten(text, limit)
    assert utf16_len(short) <= limit
    if utf16_len(text) <= limit:
        assert short == text
    else:
        assert short.endswith("…") and text.startswith(short[:-1])


@given(body=DESCRIPTIONS)
def test_fit_caption_never_breaks_markup(body: str) -> None:
    from html import escape

    markup = f'<b>{escape(body)}</b>\n<a href="https://uri.amap.com/marker?position=1,2&amp;name=x">{escape(body)}</a>'
    fitted = fit_caption(markup)
    assert utf16_len(parsed(fitted)) <= CAPTION_MAX
    if utf16_len(parsed(markup)) <= CAPTION_MAX:
        assert fitted == markup
    else:
        assert parsed(fitted).endswith("…")
