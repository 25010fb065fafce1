"""WeCom refusals of a proof location say the same as Telegram's, in both languages."""

from __future__ import annotations

import pytest

from onegrid.i18n import gettext_for
from services import work
from wecom import texts


@pytest.mark.parametrize(("locale", "words"), [("en", "Go to the place"), ("zh_CN", None)])
def test_a_precise_location_clearly_far_is_refused_not_called_stale(locale: str, words: str | None) -> None:
    _ = gettext_for(locale)
    judgement = work.LocationJudgement(distance_m=612.4, allowed_m=100, age_s=4, accuracy_m=20,
                                       problems=(work.LocationProblem.CLEARLY_FAR,))
    text = texts.location_refusal(_, judgement)
    assert "612" in text and "100" in text
    assert "±" not in text  # WeCom reports no accuracy: none is named
    stale = _("This location was sent {minutes} min ago, which is too old to prove you are on site. "
              "Send your location again now.").format(minutes=1)
    assert text != stale
    if words:
        assert words in text
    else:  # the Chinese catalogue has this sentence: nothing of it is left in English
        assert "Go to the place" not in text
