"""The elder roster over /api/v1 and the CLI: masked without `pii`, whole with it; bad CSV rows are listed and
nothing is half-imported; the duty roster by API; retention empties ended records."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlmodel import func, select
from typer.testing import CliRunner

from models.elders import DutyShift, Elder, ElderDevice
from onegrid.cli import cli
from services import retention
from tests.api.conftest import STREET_A, STREET_B
from tests.worker_support import add_worker

GRID_A = "SH-HP-01-001"
BODY = {
    "name": "陈阿婆", "address": "南京东路100弄3号201室", "grid_code": GRID_A,
    "devices": [{"device_id": "DS-1001", "type": "door"}, {"device_id": "WM-77", "type": "water"}],
    "key_holder": {"name": "赵阿姨", "phone": "13900001111"},
    "contacts": [{"name": "王芳", "phone": "13800002222", "chat_id": 700001, "notify": True}],
    "consent": {"by": "陈阿婆本人", "at": "2026-11-01T10:00:00+08:00"},
}


def count(api, table) -> int:  # noqa: ANN001
    with api.ctx.sessions() as s:
        return s.exec(select(func.count()).select_from(table)).one()


async def test_a_key_without_pii_sees_the_roster_masked_and_one_with_pii_sees_it_whole(api) -> None:
    api.key("pii", ["read", "write", "pii"], STREET_A)
    created = await api.client.post("/api/v1/elders", json=BODY, headers=api.auth("street_a"))
    assert created.status_code == 201, created.text
    masked = created.json()  # even the writer's own answer is masked without pii
    assert masked["masked"] is True
    assert masked["name"] == "陈**" and masked["key_holder"] == {"name": "赵**", "phone": "139****1111"}
    assert "201室" not in masked["address"] and masked["address"].startswith("南京东路")
    assert masked["contacts"] == [{"name": "王*", "phone": "138****2222", "chat_id": None, "uses_bot": True,
                                   "notify": True}]
    assert masked["consent"]["by"] == "陈**"
    assert [d["device_id"] for d in masked["devices"]] == ["DS-1001", "WM-77"]

    listed = await api.client.get("/api/v1/elders", headers=api.auth("street_a"))
    assert [e["name"] for e in listed.json()] == ["陈**"]
    whole = (await api.client.get(f"/api/v1/elders/{masked['id']}", headers=api.auth("pii"))).json()
    assert whole["masked"] is False and whole["name"] == "陈阿婆" and whole["address"] == BODY["address"]
    assert whole["contacts"][0]["phone"] == "13800002222" and whole["contacts"][0]["chat_id"] == 700001
    # Another street's key does not see it at all.
    other = await api.client.get(f"/api/v1/elders/{masked['id']}", headers=api.auth("street_b"))
    assert other.status_code == 404
    assert (await api.client.get("/api/v1/elders", headers=api.auth("street_b"))).json() == []


async def test_update_delete_and_the_rules_of_a_record(api) -> None:
    first = (await api.client.post("/api/v1/elders", json=BODY, headers=api.auth("street_a"))).json()
    again = await api.client.post("/api/v1/elders", json={**BODY, "name": "李老伯"}, headers=api.auth("street_a"))
    assert again.status_code == 422 and "DS-1001 is already listed" in again.json()["detail"]
    no_consent = {**BODY, "devices": [{"device_id": "DS-2", "type": "door"}], "consent": {"by": " ", "at": "2026-11-01T10:00:00+08:00"}}
    refused = await api.client.post("/api/v1/elders", json=no_consent, headers=api.auth("street_a"))
    assert refused.status_code == 422 and "consent" in refused.json()["detail"]
    outside = await api.client.post("/api/v1/elders", json={**BODY, "grid_code": "SH-HP-02-001",
                                                             "devices": [{"device_id": "X", "type": "door"}]},
                                    headers=api.auth("street_a"))
    assert outside.status_code == 422 and "outside this key's area" in outside.json()["detail"]
    assert count(api, Elder) == 1

    moved = {**BODY, "devices": [{"device_id": "DS-1002", "type": "door"}]}
    updated = await api.client.put(f"/api/v1/elders/{first['id']}", json=moved, headers=api.auth("street_a"))
    assert updated.status_code == 200 and [d["device_id"] for d in updated.json()["devices"]] == ["DS-1002"]
    gone = await api.client.delete(f"/api/v1/elders/{first['id']}", headers=api.auth("street_a"))
    assert gone.status_code == 204
    assert (await api.client.get(f"/api/v1/elders/{first['id']}", headers=api.auth("street_a"))).status_code == 404
    assert count(api, ElderDevice) == 0  # its devices raise no welfare checks any more
    relisted = await api.client.post("/api/v1/elders", json=BODY, headers=api.auth("street_a"))
    assert relisted.status_code == 201  # the device ids are free again

    # Retention: 30 days after the record ended, its personal data is emptied; the row stays for the audit.
    api.clock.advance(days=31)
    done = await asyncio.to_thread(retention.apply_retention, api.ctx)
    assert done["elders_purged"] == 1
    with api.ctx.sessions() as s:
        ended = s.get(Elder, first["id"])
    assert (ended.name, ended.address, ended.key_holder_phone, ended.contacts) == ("", "", "", [])


async def test_writes_need_the_write_scope(api) -> None:
    api.key("reader", ["read"], STREET_A)
    answer = await api.client.post("/api/v1/elders", json=BODY, headers=api.auth("reader"))
    assert answer.status_code == 403


async def test_the_duty_roster_by_api(api) -> None:
    worker = add_worker(api.ctx.sessions, api.clock.now(), 8801, area_code=GRID_A)
    made = await api.client.post("/api/v1/duty-shifts", headers=api.auth("street_a"), json={
        "area_code": STREET_A, "person_id": worker, "days": "mon-fri", "start": "20:00", "end": "08:00"})
    assert made.status_code == 201, made.text
    assert made.json() | {"id": 0} == {"id": 0, "area_code": STREET_A, "person_id": worker,
                                      "weekdays": [0, 1, 2, 3, 4], "start": "20:00", "end": "08:00"}
    bad = await api.client.post("/api/v1/duty-shifts", headers=api.auth("street_a"), json={
        "area_code": STREET_B, "person_id": worker, "days": "daily", "start": "08:00", "end": "20:00"})
    assert bad.status_code == 422 and "outside this key's area" in bad.json()["detail"]
    listed = await api.client.get("/api/v1/duty-shifts", headers=api.auth("street_a"))
    assert [s["id"] for s in listed.json()] == [made.json()["id"]]
    assert (await api.client.delete(f"/api/v1/duty-shifts/{made.json()['id']}",
                                    headers=api.auth("street_a"))).status_code == 204
    assert count(api, DutyShift) == 0


GOOD_ROW = ("陈阿婆,南京东路100弄3号201室,SH-HP-01-001,,,door:DS-1001;water:WM-77,赵阿姨,13900001111,"
            "王芳|13800002222|700001|yes;李强|13700003333||no,陈阿婆本人,2026-11-01")
HEADER = "name,address,grid,lat,lon,devices,key_holder_name,key_holder_phone,contacts,consent_by,consent_at"


def run(db, args: list[str]) -> tuple[int, str, str]:  # noqa: ANN001
    result = CliRunner().invoke(cli, args, env={"ONEGRID_DATABASE_URL": db.url})
    return result.exit_code, result.stdout, result.stderr


async def test_the_cli_imports_all_rows_or_none_and_names_each_bad_row(api, db, tmp_path) -> None:
    bad = tmp_path / "elders-bad.csv"
    bad.write_text("\n".join([
        HEADER, GOOD_ROW,
        "李老伯,,SH-HP-01-001,,,door:DS-2,,,,李老伯,2026-11-01",  # no address
        "周阿姨,长宁路1号,,,,smoke:SM-1,,,,周阿姨,yesterday",  # no grid or location, a bad device type, a bad date
        "吴伯伯,长宁路2号,SH-HP-01-001,,,door:DS-1001,,,孙丽|13800009999||maybe,吴伯伯,2026-11-01",  # repeat device
    ]) + "\n", encoding="utf-8")
    code, out, err = await asyncio.to_thread(run, db, ["elders", "import", str(bad)])
    assert code == 1
    assert "line 3: address: is required" in err
    assert "line 4: consent_at: 'yesterday' is not a date" in err
    assert "line 5: contacts: 孙丽: notify must be yes or no, not 'maybe'" in err
    assert "nothing imported: 3 bad row(s)" in err
    assert count(api, Elder) == 0  # the good row was not imported either

    good = tmp_path / "elders.csv"
    good.write_text(HEADER + "\n" + GOOD_ROW + "\n", encoding="utf-8")
    code, out, err = await asyncio.to_thread(run, db, ["elders", "import", str(good)])
    assert code == 0, err
    assert out.strip() == "imported 1 elder(s)"
    code, out, _ = await asyncio.to_thread(run, db, ["elders", "list"])
    assert "陈**" in out and "陈阿婆" not in out and "139****1111" in out and "13900001111" not in out
    code, out, _ = await asyncio.to_thread(run, db, ["elders", "list", "--pii"])
    assert "陈阿婆" in out and "13900001111" in out and "王芳 13800002222 (told)" in out


async def test_the_cli_manages_the_duty_roster(api, db) -> None:
    worker = add_worker(api.ctx.sessions, api.clock.now(), 8802, area_code=GRID_A)
    code, out, err = await asyncio.to_thread(run, db, ["roster", "add", STREET_A, str(worker), "daily", "20:00",
                                                       "08:00"])
    assert code == 0, err
    code, out, _ = await asyncio.to_thread(run, db, ["roster", "list"])
    assert f"{STREET_A}" in out and "mon,tue,wed,thu,fri,sat,sun" in out and "20:00-08:00" in out
    code, _, err = await asyncio.to_thread(run, db, ["roster", "add", STREET_A, str(worker), "someday", "20:00",
                                                     "08:00"])
    assert code == 1 and "'som' is not a weekday" in err
    code, out, _ = await asyncio.to_thread(run, db, ["roster", "committee", STREET_A, "江苏路居委会",
                                                     "--phone", "021-62000000"])
    assert code == 0 and "(no chat: it is not messaged)" in out
