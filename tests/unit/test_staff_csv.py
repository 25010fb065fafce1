"""Reading the staff list of `onegrid invite --csv`: every row keeps the line it starts on in the file,
whatever blank lines, quoted commas and line breaks inside names come before it (the operator fixes
the file by those numbers)."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given, settings, strategies as st

from services.invitation_bulk import BulkInvitationRefused, ProblemKind, read_staff_csv

names = st.text(alphabet=st.sampled_from("王芳李 ,\"\nAbc-"), min_size=1, max_size=12).filter(str.strip)


@settings(max_examples=80, deadline=None)
@given(rows=st.lists(st.tuples(names, st.integers(0, 2)), min_size=1, max_size=12), crlf=st.booleans())
def test_each_row_keeps_the_line_it_starts_on(rows: list[tuple[str, int]], crlf: bool) -> None:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n" if crlf else "\n")
    writer.writerow(["name", "role", "area", "department", "phone"])
    expected = []
    line = 2
    for name, blanks in rows:
        for _ in range(blanks):
            out.write("\r\n" if crlf else "\n")
            line += 1
        writer.writerow([name, "worker", "SH-CN-01-001", "greening_appearance", "13800138000"])
        expected.append((line, name.strip()))
        line += name.count("\n") + 1
    read = read_staff_csv(out.getvalue() + "\n")
    assert [(r.line, r.name) for r in read] == expected


def test_header_case_order_and_extra_columns_do_not_matter() -> None:
    rows = read_staff_csv("Phone,NAME,extra,Area,Role,Department\n138,Ann,x,SH,worker,dep\n")
    assert [(r.name, r.role, r.area, r.department, r.phone) for r in rows] == [("Ann", "worker", "SH", "dep", "138")]


@pytest.mark.parametrize("text, detail", [("name,role,area,department,phone\n\n", "no rows"),
                                          ("name,role\nAnn,worker\n", "missing columns")])
def test_a_file_with_no_rows_or_missing_columns_is_refused_at_line_1(text: str, detail: str) -> None:
    with pytest.raises(BulkInvitationRefused) as refused:
        read_staff_csv(text)
    [problem] = refused.value.problems
    assert (problem.line, problem.kind, problem.detail) == (1, ProblemKind.FILE, detail)
