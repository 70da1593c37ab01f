"""The ``/history`` page: a resident's usage records, newest first, in Chinese and English."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from helpers import (
    EN,
    ZH,
    accepted,
    ago,
    assert_self_contained,
    html,
    record,
    upload,
)

from codeservice.web import i18n
from verifiers import SceneRegistry

ENTRY = re.compile(r'<li class="entry entry-(?:ok|refused)">')
MORE = re.compile(r'<a class="button" id="history-more" rel="next" href="(/history\?before=[A-Za-z0-9_-]+)">')


def test_it_needs_a_login(client: Any) -> None:
    response = client.get("/history")
    assert response.status_code == 302 and response.location.endswith("/login")


def test_an_empty_history(logged_in: Any) -> None:
    page = html(logged_in.get("/history", headers=ZH))
    assert "使用记录将显示在这里" in page and not ENTRY.search(page) and "history-more" not in page
    assert "usage history will appear here" in html(logged_in.get("/history", headers=EN))


def test_the_history_in_chinese(logged_in: Any, a_day: list[dict[str, Any]]) -> None:
    response = logged_in.get("/history", headers=ZH)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    page = html(response)
    assert '<html lang="zh-Hans">' in page
    assert len(ENTRY.findall(page)) == 6
    for text in (
        "公共交通", "医疗机构", "文化场馆",
        "进站", "出站，车费 ¥3.00", "今日已在该科室签到", "码已使用过（重复扫码）", "已入场", "未通过（gate_jammed）",
        "人民广场", "陆家嘴", "内科", "R-88", "B3",
        "metro-1 · gate-7", "离线核验，稍后上传", "北京时间",
    ):
        assert text in page, text
    assert "fare_cents" not in page and "trip_id" not in page
    assert "<dt>方向</dt>" not in page  # an accepted transit decision already says in or out


def test_the_history_in_english(logged_in: Any, a_day: list[dict[str, Any]]) -> None:
    page = html(logged_in.get("/history", headers=EN))
    assert '<html lang="en">' in page
    for text in (
        "Transit", "Clinic", "Venue",
        "Entered", "Exited, fare ¥3.00", "Already checked in here today", "Code already used (scanned twice)",
        "Refused (gate_jammed)", "Station", "Department", "Party", "Reservation",
        "Checked offline, uploaded later", "UTC+8",
    ):
        assert text in page, text
    assert "进站" not in page


def test_newest_first(logged_in: Any, a_day: list[dict[str, Any]]) -> None:
    page = html(logged_in.get("/history", headers=EN))
    assert re.findall(r'<p class="entry-decision">([^<]*)</p>', page) == [
        "Refused (gate_jammed)",
        "Entered",
        "Code already used (scanned twice)",
        "Already checked in here today",
        "Exited, fare ¥3.00",
        "Entered",
    ]
    assert re.findall(r'<span class="entry-scene">([^<]*)</span>', page) == [
        "Transit", "Venue", "Venue", "Clinic", "Transit", "Transit"
    ]


def test_times_are_china_standard_time(client: Any, key: str, sub: str, logged_in: Any) -> None:
    yesterday = (datetime.now(UTC) - timedelta(days=1)).replace(hour=20, minute=15, second=0, microsecond=0)
    sent = record(sub=sub, decided_at=yesterday.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert accepted(upload(client, key, [sent])) == (1, 0)
    local = (yesterday + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M")
    assert local.endswith("04:15")
    utc = yesterday.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert f'<time datetime="{utc}">{local}</time>' in html(logged_in.get("/history"))


def test_more_pages_through_a_cursor(client: Any, key: str, sub: str, logged_in: Any) -> None:
    stations = [f"站{i:02d}" for i in range(45)]
    batch = [
        record(ago(minutes=i), sub=sub, detail={"station": station, "direction": "in"})
        for i, station in enumerate(stations)
    ]
    assert accepted(upload(client, key, batch)) == (45, 0)
    seen: list[str] = []
    path, pages = "/history", []
    while path:
        page = html(logged_in.get(path, headers=ZH))
        pages.append(page)
        seen += re.findall(r"<dd>(站\d\d)</dd>", page)
        match = MORE.search(page)
        path = match.group(1) if match else ""
    assert [len(ENTRY.findall(page)) for page in pages] == [20, 20, 5]
    assert seen == stations  # newest first, each once
    assert "更早的记录" in pages[0] and "回到最新记录" not in pages[0]
    assert "没有更早的记录了" in pages[2] and 'href="/history"' in pages[2]


def test_a_refused_transit_presentation_says_which_way(client: Any, key: str, sub: str, logged_in: Any) -> None:
    passback = record(sub=sub, ok=False, code="passback", detail={"station": "徐家汇", "direction": "in"})
    assert accepted(upload(client, key, [passback])) == (1, 0)
    page = html(logged_in.get("/history", headers=ZH))
    assert "已有未结束的行程（上次未出站）" in page and "<dt>方向</dt>" in page and "<dd>进站</dd>" in page
    page = html(logged_in.get("/history", headers=EN))
    assert "A trip was still open" in page and "<dt>Direction</dt>" in page and "<dd>Entry</dd>" in page


def test_a_damaged_cursor(logged_in: Any) -> None:
    response = logged_in.get("/history?before=not-a-cursor", headers=EN)
    assert response.status_code == 400
    page = html(response)
    assert "This link is invalid" in page and 'href="/history"' in page
    assert "链接无效" in html(logged_in.get("/history?before=%21", headers=ZH))


def test_only_the_residents_own_records(app: Any, client: Any, key: str, sub: str, logged_in: Any) -> None:
    mine = record(sub=sub, detail={"station": "我的车站", "direction": "in"})
    theirs = record(sub="someone0else000x", detail={"station": "别人的车站", "direction": "in"})
    assert accepted(upload(client, key, [mine, theirs])) == (2, 0)
    page = html(logged_in.get("/history"))
    assert "我的车站" in page and "别人的车站" not in page


def test_uploaded_text_is_never_markup(client: Any, key: str, sub: str, logged_in: Any) -> None:
    hostile = record(
        sub=sub,
        ok=False,
        code="no_entry",
        detail={
            "station": "<script>alert(1)</script>",
            "line": '" onmouseover="x',
            "entry_station": "<b><img src=x onerror=alert(1)></b>",
        },
    )
    assert accepted(upload(client, key, [hostile])) == (1, 0)
    page = html(logged_in.get("/history"))
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img" not in page and "&lt;b&gt;" in page
    assert_self_contained(page, "/history with hostile detail")


def test_no_inline_script_and_nothing_from_outside(logged_in: Any, a_day: list[dict[str, Any]]) -> None:
    for headers in (ZH, EN):
        page = html(logged_in.get("/history", headers=headers))
        assert page.startswith("<!doctype html>")
        assert "<script" not in page and "<style" not in page
        assert_self_contained(page, f"/history {headers}")


def test_every_decision_code_reads_in_both_languages() -> None:
    codes = SceneRegistry.from_entry_points().rejection_codes()
    assert {"malformed", "replayed", "passback", "no_entry", "already_checked_in", "capacity_full"} <= set(codes)
    for lang in i18n.LANGUAGES:
        missing = [code for code in codes if f"decision_{code}" not in i18n.MESSAGES[lang]]
        assert missing == [], lang
        for key in ("scene_clinic", "scene_transit", "scene_venue", "decision_accepted_clinic",
                    "decision_accepted_venue", "decision_accepted_transit_in", "decision_accepted_transit_out_fare"):
            assert key in i18n.MESSAGES[lang], (lang, key)
