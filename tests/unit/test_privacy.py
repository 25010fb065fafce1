"""The one masking rule for free text, coordinates and residents shown to staff (services/privacy.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.privacy import coarsen, mask_text, resident_tag


@pytest.mark.parametrize(("text", "masked"), [
    ("我叫王小明，电话13812345678", "我叫***，电话138****5678"),
    ("联系人：李雷 +86 138-1234-5678", "联系人：** 138****5678"),
    ("身份证110101199003071234，座机021-63211234", "身份证**************1234，座机021****1234"),
    ("My name is John Smith, mail li.lei@example.com", "My name is J**, mail l***@example.com"),
    ("name: Alice. Bin full since 2026-11-21, 3 bags", "name: A**. Bin full since 2026-11-21, 3 bags"),
    ("垃圾桶满了，门牌 1203 号", "垃圾桶满了，门牌 1203 号"),
    ("", ""),
])
def test_mask_text_hides_numbers_and_introduced_names(text, masked) -> None:
    assert mask_text(text) == masked


_words = st.text(alphabet=st.sampled_from("垃圾桶满了路灯坏 abcXYZ,.，。"), max_size=20)


@given(before=_words, after=_words, prefix=st.sampled_from(["13", "15", "18", "19"]),
       rest=st.integers(min_value=0, max_value=999_999_999), separator=st.sampled_from(["", " ", "-"]))
def test_no_mobile_number_survives_whatever_surrounds_it(before, after, prefix, rest, separator) -> None:
    digits = f"{prefix}{rest:09d}"
    number = separator.join([digits[:3], digits[3:7], digits[7:]])
    masked = mask_text(f"{before}{number}{after}")
    assert masked == f"{before}{digits[:3]}****{digits[7:]}{after}"


def test_coordinates_round_to_about_100_m_and_residents_show_no_name() -> None:
    assert coarsen(31.2345678) == 31.235 and coarsen(121.4904449) == 121.49
    assert resident_tag("+86 138 1234 5678", 7) == "138****5678" and resident_tag(None, 42) == "R000042"
