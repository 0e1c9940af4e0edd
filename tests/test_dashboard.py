"""The daemon's page, ``GET /`` and ``GET /dashboard.json``, read by requests and by Chromium.

A hand-built state directory (written through :class:`live.session.journal.Journal`, as the
daemon writes it) covers the routes and their guards quickly; a real daemon on a replay
session covers the page in a browser, while it runs and after it stopped.
"""

from __future__ import annotations

import json
import re
import signal
import socket
from pathlib import Path

import pytest
import requests

from live.monitor.dashboard_data import read_dashboard
from live.monitor.http import start_http
from live.monitor.page_assets import PANELS
from live.monitor.status import write_status
from live.session.journal import JOURNAL_FILE, Journal
from sizing.breaker import BreakerState
from sizing.decisions import DECISION_FIELDS
from tests.browser import cells_text, distinct_colours, dump_dom, fields, rows, screenshot, section
from tests.sessions import start_daemon, wait_decided, write_config

DAYS = [f"2024-{m:02d}-{d:02d}" for m in (1, 2, 3) for d in range(1, 21)]  # 60 days
TOKEN = "dashboard-test-token-4f1c"


def build_state_dir(folder: Path) -> Path:
    """60 decided days of AAA, one filled order, and the daemon's status after the last."""
    folder.mkdir(parents=True, exist_ok=True)
    journal = Journal(folder / JOURNAL_FILE)
    journal.set_meta("session", {"symbols": ["AAA"], "trade_start": DAYS[0],
                                 "sizing": {"drawdown_circuit_breaker": 0.2}})
    bundle = journal.add_bundle("/bundles/AAA", "ab" * 32, DAYS[0], "2024-01-01T00:00:00")
    for k, day in enumerate(DAYS, start=1):
        values = {"date": day, "symbol": "AAA", "prediction": 0.001 * k, "target_weight": 0.5,
                  "held_weight": 0.4, "p_win": 0.55, "drawdown": 0.001 * k}
        row = (*(values.get(f, 0.0) for f in DECISION_FIELDS), bundle)
        breaker = BreakerState(high_water=100_000.0 + k, drawdown=0.001 * k, trips=k // 30)
        journal.record_bar_step([("AAA", day, 10.0, 11.0, 9.0, 10.5, 1e6)], [row],
                                (day, 100_000.0 + k, 50_000.0, 100_000.0 + k, 0.001 * k,
                                 breaker.to_json()))
    journal.record_intent("ens-AAA-2024-01-01-1", "AAA", "buy", 12.0, DAYS[0])
    journal.record_fill("f1", "ens-AAA-2024-01-01-1", "AAA", "buy", 12.0, 10.25, DAYS[1])
    journal.record_order("ens-AAA-2024-01-01-1", "o1", "filled", 12.0, 10.25, DAYS[1])
    journal.close()
    write_status(folder, {
        "updated": "2024-03-20T21:00:00+00:00", "pid": 1, "state": "stopped",
        "symbols": ["AAA"], "last_bar": DAYS[-1], "positions": {"AAA": 12.0},
        "equity": 100_060.0, "cash": 50_000.0, "high_water": 100_060.0, "drawdown": 0.06,
        "breaker": json.loads(BreakerState(100_060.0, 0.06, False, False, 2).to_json()),
        "connections": {"market_data": "closed", "trading_stream": "closed"},
        "weights": {"AAA": {"date": DAYS[-1], "slice": 1.0, "target_weight": 0.5,
                            "held_weight": 0.4, "account_target_weight": 0.5,
                            "account_held_weight": 0.4}},
        "bundle": {"id": 1, "path": "/bundles/AAA"}, "lag_seconds": 0.02})
    return folder


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory) -> Path:
    return build_state_dir(tmp_path_factory.mktemp("dashboard") / "state")


@pytest.fixture(scope="module")
def server(state_dir):
    with start_http("127.0.0.1:0", state_dir) as handle:
        yield handle


def journal_view(state: Path) -> tuple[dict, list[dict], dict]:
    """The journal's last account row, its last 50 decisions (newest first), its positions."""
    journal = Journal(state / JOURNAL_FILE, readonly=True)
    try:
        with journal.snapshot():
            equity = journal.last_equity()
            decisions = journal.decisions_frame().tail(50).to_dict(orient="records")[::-1]
            positions = journal.positions()
    finally:
        journal.close()
    return equity, decisions, positions


# ------------------------------------------------------------------- routes
def test_get_root_serves_every_panel_with_a_policy_that_forbids_outside_requests(server):
    reply = requests.get(server.url + "/", timeout=10)

    assert reply.status_code == 200 and reply.headers["Content-Type"].startswith("text/html")
    policy = reply.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    for panel in PANELS:
        assert f'id="{panel}"' in reply.text
    assert "<svg" in reply.text and "<metadata>" not in reply.text
    for outside in ('src="http', 'href="http', "<link", "url(http", "@import"):
        assert outside not in reply.text


def test_dashboard_json_sends_the_charts_only_to_a_page_that_lacks_them(server):
    first = requests.get(server.url + "/dashboard.json", timeout=10).json()
    again = requests.get(server.url + "/dashboard.json",
                         params={"charts": first["charts_version"]}, timeout=10).json()

    assert "charts" in first["fragments"] and "<svg" in first["fragments"]["charts"]
    assert "charts" not in again["fragments"]
    assert set(again["fragments"]) >= set(PANELS) - {"charts"}
    assert again["status"]["last_bar"] == DAYS[-1]


def test_the_page_of_a_folder_without_state_files_is_503_without_its_path(tmp_path):
    with start_http("127.0.0.1:0", tmp_path) as handle:
        page = requests.get(handle.url + "/", timeout=10)
        body = requests.get(handle.url + "/dashboard.json", timeout=10)

    assert page.status_code == 503 and body.status_code == 503
    assert str(tmp_path) not in page.text and str(tmp_path) not in body.text


def test_a_page_read_before_the_status_catches_up_names_the_journals_bar(tmp_path):
    # The daemon commits a bar, then rewrites status.json: a read in between sees the journal
    # a bar ahead of the status.  The page must name the bar whose decisions it lists.
    state = build_state_dir(tmp_path / "state")
    stale = json.loads((state / "status.json").read_text())
    stale.update(state="running", last_bar=DAYS[-2], equity=1.0, cash=2.0, drawdown=0.5)
    write_status(state, stale)

    d = read_dashboard(state)

    equity, decisions, _ = journal_view(state)
    assert d.status["last_bar"] == DAYS[-1] == d.decisions[0]["date"] == decisions[0]["date"]
    assert (d.status["equity"], d.status["cash"], d.status["drawdown"]) == (
        equity["equity"], equity["cash"], equity["drawdown"])
    assert d.status["breaker"] == equity["breaker"] and d.status["state"] == "running"


@pytest.mark.parametrize("path", ["/", "/dashboard.json"])
def test_a_foreign_host_header_is_refused_on_the_page(server, path):
    reply = requests.get(server.url + path, headers={"Host": "evil.example:80"}, timeout=10)

    assert reply.status_code == 421 and "error" in reply.json()


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_the_page_is_read_only(server, method):
    assert requests.request(method, server.url + "/", timeout=10).status_code == 405


def test_on_a_non_loopback_bind_the_page_needs_the_bearer_token(state_dir):
    with start_http("0.0.0.0:0", state_dir, TOKEN) as handle:
        url = f"http://127.0.0.1:{handle.port}"
        without = requests.get(url + "/", timeout=10)
        wrong = requests.get(url + "/dashboard.json", timeout=10,
                             headers={"Authorization": "Bearer nope"})
        given = requests.get(url + "/", headers={"Authorization": f"Bearer {TOKEN}"},
                             timeout=10)

    assert without.status_code == 401 and wrong.status_code == 401
    assert TOKEN not in without.text
    assert given.status_code == 200 and 'id="decisions"' in given.text


# ----------------------------------------------------------------- browser
@pytest.mark.slow
def test_the_page_in_a_browser_shows_the_journal_of_a_stopped_session(server, state_dir):
    dom = dump_dom(server.url + "/")
    equity, decisions, positions = journal_view(state_dir)

    account = fields(section(dom, "account"))
    assert float(account["equity"]) == equity["equity"] == 100_060.0
    assert cells_text(section(dom, "summary"))["state"] == "stopped"
    shown = rows(section(dom, "decisions"), "data-date")
    assert [d for d, _ in shown] == [d["date"] for d in decisions] and len(shown) == 50
    assert float(fields(shown[0][1])["prediction"]) == decisions[0]["prediction"]
    (symbol, row), = rows(section(dom, "positions"), "data-symbol")
    assert symbol == "AAA" and float(fields(row)["filled"]) == positions["AAA"]
    order, = rows(section(dom, "orders"), "data-id")
    assert order[0] == "ens-AAA-2024-01-01-1" and float(fields(order[1])["filled_qty"]) == 12


@pytest.mark.slow
def test_the_page_refreshes_itself_from_the_daemon(server):
    dom = dump_dom(server.url + "/", wait_ms=12_000)

    note = re.search(r'<span id="refresh"[^>]*>([^<]*)</span>', dom)
    assert note and note.group(1).startswith("refreshed "), note and note.group(1)


@pytest.mark.slow
def test_a_screenshot_of_the_page_is_not_blank(server, tmp_path):
    png = screenshot(server.url + "/", tmp_path / "page.png")

    assert distinct_colours(png) > 50


@pytest.mark.slow
def test_the_page_of_a_live_replay_session_matches_its_journal(daemon_setup, server_factory,
                                                                tmp_path):
    server = server_factory()
    config = write_config(daemon_setup, server, tmp_path / "paper.yaml")
    state = tmp_path / "state"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = start_daemon(config, state, "--http", f"127.0.0.1:{port}")
    try:
        wait_decided(proc, state, 15)
        dom = dump_dom(f"http://127.0.0.1:{port}/")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0

    # While it ran: every figure shown is the journal's at the bar the page names.
    last_bar = cells_text(section(dom, "summary"))["last_bar"]
    journal = Journal(state / JOURNAL_FILE, readonly=True)
    try:
        account = journal.db.execute("SELECT equity FROM equity WHERE date = ?",
                                     (last_bar,)).fetchone()
        assert float(fields(section(dom, "account"))["equity"]) == account["equity"]
        shown = rows(section(dom, "decisions"), "data-date")
        assert shown and shown[0][0] == last_bar
        for day, row in shown:
            decision = journal.decision(day, "AAA")
            assert float(fields(row)["target_weight"]) == decision["target_weight"]
    finally:
        journal.close()
    # Stopped: the page, served from the state directory alone, is the journal's last word.
    with start_http("127.0.0.1:0", state) as handle:
        dom = dump_dom(handle.url + "/")
    equity, decisions, positions = journal_view(state)
    assert cells_text(section(dom, "summary"))["state"] == "stopped"
    assert float(fields(section(dom, "account"))["equity"]) == equity["equity"]
    assert [d for d, _ in rows(section(dom, "decisions"), "data-date")] == [
        d["date"] for d in decisions]
    (symbol, row), = rows(section(dom, "positions"), "data-symbol")
    assert float(fields(row)["filled"]) == positions.get(symbol, 0.0)
