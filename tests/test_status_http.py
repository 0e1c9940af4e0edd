"""``live.monitor.status`` and the read-only HTTP endpoint, on a state directory built by hand.

The journal is written through :class:`live.session.journal.Journal` exactly as the daemon
writes it, and ``status.json`` through :func:`live.monitor.status.write_status`; the endpoint
is served on 127.0.0.1 and queried with ``requests``.
"""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from ensemble_bt.errors import ConfigurationError, DataError
from live.aiothread import parse_address
from live.monitor.bearer import TOKEN_ENV, check_binding
from live.monitor.hostguard import HOSTS_ENV
from live.monitor.http import start_http
from live.monitor.status import STATUS_FILE, read_status, write_status
from live.session.journal import JOURNAL_FILE, Journal
from sizing.breaker import BreakerState
from sizing.decisions import DECISION_FIELDS

SYMBOLS = ["AAA", "BBB", "CCC"]  # CCC belongs to the session but has no decision yet
DAYS = ["2024-01-02", "2024-01-03", "2024-01-04"]
BUNDLE_PATH = "/bundles/AAA-2023"
UPDATED = "2024-01-04T21:00:05+00:00"


def decision_row(day: str, symbol: str, k: int, bundle: int) -> tuple:
    values = {"date": day, "symbol": symbol, "prediction": 0.001 * k,
              "expected_return": 0.0005 * k, "volatility": 0.02, "p_win": 0.5 + 0.01 * k,
              "payoff": 1.1, "n_resolved": 100.0 + k, "target_weight": 0.1 * k,
              "held_weight": 0.05 * k, "drawdown": 0.01 * k, "breaker": 0.0}
    return (*(values[f] for f in DECISION_FIELDS), bundle)


def build_state_dir(folder: Path, with_status: bool = True) -> Path:
    """Three decided days of AAA and BBB, one fill, and the daemon's status after the last."""
    folder.mkdir(parents=True, exist_ok=True)
    journal = Journal(folder / JOURNAL_FILE)
    journal.set_meta("session", {"symbols": SYMBOLS, "trade_start": DAYS[0], "replay": True})
    bundle = journal.add_bundle(BUNDLE_PATH, "ab" * 32, DAYS[0], UPDATED)
    for k, day in enumerate(DAYS, start=1):
        bars = [(s, day, 10.0 + k, 11.0 + k, 9.0 + k, 10.5 + k, 1e6) for s in SYMBOLS]
        decisions = [decision_row(day, s, k, bundle) for s in ("AAA", "BBB")]
        breaker = BreakerState(high_water=100_000.0 + k, drawdown=0.01 * k, trips=k - 1)
        equity = (day, 100_000.0 + k, 90_000.0 - k, 100_000.0 + k, 0.01 * k, breaker.to_json())
        journal.record_bar_step(bars, decisions, equity)
    journal.record_intent("paper-AAA-2024-01-02-0", "AAA", "buy", 12.0, DAYS[0])
    journal.record_fill("fill-1", "paper-AAA-2024-01-02-0", "AAA", "buy", 12.0, 12.5, DAYS[1])
    journal.record_order("paper-AAA-2024-01-02-0", "order-1", "filled", 12.0, 12.5, UPDATED)
    journal.close()
    if with_status:
        write_status(folder, {
            "updated": UPDATED, "pid": 4242, "state": "running", "symbols": SYMBOLS,
            "last_bar": DAYS[-1], "positions": {"AAA": 12.0, "BBB": 0.0, "CCC": 0.0},
            "equity": 100_003.0, "cash": 89_997.0, "high_water": 100_003.0, "drawdown": 0.03,
            "breaker": json.loads(BreakerState(100_003.0, 0.03, False, False, 2).to_json()),
            "connections": {"market_data": "connected", "trading_stream": "connected"},
            "bundle": {"id": 1, "path": BUNDLE_PATH}, "lag_seconds": 0.012, "replay": True})
    return folder


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory) -> Path:
    return build_state_dir(tmp_path_factory.mktemp("paper") / "state")


@pytest.fixture(scope="module")
def server(state_dir):
    with start_http("127.0.0.1:0", state_dir) as handle:
        yield handle


# ------------------------------------------------------------------------ read_status
def test_read_status_returns_status_file_age_and_journal_block(state_dir):
    now = datetime(2024, 1, 4, 21, 1, 5, tzinfo=UTC)

    status = read_status(state_dir, now=now)

    assert status["state"] == "running" and status["pid"] == 4242
    assert status["last_bar"] == DAYS[-1] and status["symbols"] == SYMBOLS
    assert status["connections"] == {"market_data": "connected", "trading_stream": "connected"}
    assert status["bundle"] == {"id": 1, "path": BUNDLE_PATH}
    assert status["breaker"]["trips"] == 2
    assert status["age_seconds"] == 60.0
    assert status["journal"] == {"last_decided": DAYS[-1], "decisions": 6, "orders": 1,
                                 "positions": {"AAA": 12.0}}


def test_read_status_of_a_folder_without_state_files_raises_configuration_error(tmp_path):
    with pytest.raises(ConfigurationError, match="not a paper state directory") as info:
        read_status(tmp_path)

    assert "\n" not in str(info.value) and str(tmp_path) in str(info.value)


def test_read_status_with_corrupt_status_file_raises_data_error(tmp_path):
    (tmp_path / STATUS_FILE).write_text('{"state": "runn')

    with pytest.raises(DataError, match="corrupt status file") as info:
        read_status(tmp_path)

    assert "\n" not in str(info.value)


def test_read_status_with_corrupt_journal_raises_data_error(tmp_path):
    (tmp_path / JOURNAL_FILE).write_bytes(b"not a database" * 100)

    # The journal names the file itself as not a journal; the status reader wraps the rest.
    with pytest.raises(DataError, match="not an ensemble-bt journal|cannot read the journal"):
        read_status(tmp_path)


def test_read_status_from_journal_alone_reports_unknown_state(tmp_path):
    folder = build_state_dir(tmp_path / "state", with_status=False)

    status = read_status(folder)

    assert status["state"] == "unknown" and status["age_seconds"] is None
    assert status["symbols"] == SYMBOLS and status["last_bar"] == DAYS[-1]
    assert status["equity"] == 100_003.0 and status["breaker"]["trips"] == 2
    assert status["bundle"] == {"id": 1, "path": BUNDLE_PATH}
    assert status["positions"] == {"AAA": 12.0}
    assert status["journal"]["decisions"] == 6


def test_read_status_drops_secret_looking_keys(tmp_path):
    folder = build_state_dir(tmp_path / "state")
    raw = json.loads((folder / STATUS_FILE).read_text())
    write_status(folder, {**raw, "APCA_API_SECRET_KEY": "hunter2", "http_token": "t"})

    status = read_status(folder)

    assert "hunter2" not in json.dumps(status) and "http_token" not in status


# ---------------------------------------------------------------------------- binding
@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:8080", ("127.0.0.1", 8080)), ("localhost:0", ("localhost", 0)),
    ("[::1]:8080", ("::1", 8080)), ("0.0.0.0:9000", ("0.0.0.0", 9000))])
def test_parse_address_accepts_host_and_port(text, expected):
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["8080", "127.0.0.1", "127.0.0.1:", ":8080", "::1:8080",
                                  "[localhost]:80", "127.0.0.1:70000", "host name:80",
                                  "http://127.0.0.1:80"])
def test_parse_address_rejects_malformed_text(text):
    with pytest.raises(ConfigurationError, match="HTTP address"):
        parse_address(text)


def test_check_binding_allows_loopback_without_token():
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        check_binding(host, None)


def test_binding_non_loopback_without_token_raises_configuration_error(state_dir):
    message = f"binding 0.0.0.0 needs a bearer token: set {TOKEN_ENV}"

    with pytest.raises(ConfigurationError) as info:
        start_http("0.0.0.0:0", state_dir, token=None)

    assert str(info.value) == message
    with pytest.raises(ConfigurationError, match="needs a bearer token"):
        check_binding("192.168.1.10", "")


def test_start_http_on_missing_state_dir_raises_configuration_error(tmp_path):
    with pytest.raises(ConfigurationError, match="no such state directory"):
        start_http("127.0.0.1:0", tmp_path / "missing")


# ------------------------------------------------------------------------------ routes
def test_get_status_returns_read_status(server, state_dir):
    response = requests.get(server.url + "/status", timeout=5)

    assert response.status_code == 200
    body, expected = response.json(), read_status(state_dir)
    assert body.pop("age_seconds") >= 0 and expected.pop("age_seconds") >= 0
    assert body == expected


def test_get_decision_returns_the_journals_latest_decision(server, state_dir):
    journal = Journal(state_dir / JOURNAL_FILE, readonly=True)
    expected, equity = journal.latest_decision("AAA"), journal.last_equity()
    journal.close()

    response = requests.get(server.url + "/decision", params={"symbol": "AAA"}, timeout=5)

    assert response.status_code == 200
    body = response.json()
    assert body["decision"] == expected
    assert body["symbol"] == "AAA" and body["date"] == DAYS[-1]
    assert body["bundle"] == {"id": 1, "path": BUNDLE_PATH, "manifest_sha256": "ab" * 32,
                              "predict_start": DAYS[0]}
    assert body["breaker"] == {"as_of": DAYS[-1], **equity["breaker"]}


@pytest.mark.parametrize("symbol", ["ZZZ", "CCC"])
def test_get_decision_for_unknown_or_undecided_symbol_is_404(server, symbol):
    response = requests.get(server.url + "/decision", params={"symbol": symbol}, timeout=5)

    assert response.status_code == 404
    assert symbol in response.json()["error"]


def test_get_decision_without_symbol_is_400(server):
    for url in ("/decision", "/decision?symbol="):
        response = requests.get(server.url + url, timeout=5)
        assert response.status_code == 400 and "symbol" in response.json()["error"]


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "HEAD"])
def test_any_method_but_get_is_405(server, method):
    response = requests.request(method, server.url + "/decision?symbol=AAA", timeout=5)

    assert response.status_code == 405
    assert response.headers["Allow"] == "GET"


def test_unknown_path_is_404_json(server):
    response = requests.get(server.url + "/orders", timeout=5)

    assert response.status_code == 404 and response.json() == {"error": "Not Found"}


def test_with_a_token_requests_need_the_bearer_header(state_dir):
    token = "s3cret-token"
    with start_http("127.0.0.1:0", state_dir, token=token) as handle:
        missing = requests.get(handle.url + "/status", timeout=5)
        wrong = requests.get(handle.url + "/status", timeout=5,
                             headers={"Authorization": "Bearer nope"})
        good = {path: requests.get(handle.url + path, timeout=5,
                                   headers={"Authorization": f"Bearer {token}"})
                for path in ("/status", "/decision?symbol=AAA")}

    assert missing.status_code == 401 and wrong.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert token not in missing.text
    assert all(r.status_code == 200 for r in good.values())
    assert token not in good["/status"].text


def test_start_http_on_a_port_in_use_raises_configuration_error(server, state_dir):
    with pytest.raises(ConfigurationError, match="cannot serve HTTP"):
        start_http(f"127.0.0.1:{server.port}", state_dir)


def test_get_status_on_a_folder_without_state_files_is_503_without_its_path(tmp_path):
    with start_http("127.0.0.1:0", tmp_path) as handle:
        response = requests.get(handle.url + "/status", timeout=5)

    assert response.status_code == 503
    assert "not a paper state directory" in response.json()["error"]
    assert str(tmp_path) not in response.text


# ------------------------------------------------------------------------- Host header
def raw_get(port: int, request: bytes, host: str = "127.0.0.1") -> tuple[int, dict, bytes]:
    """Send ``request`` as is (requests always adds a Host header) and parse the answer."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect((host, port))
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1)
                                                         for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "127.0.0.1.evil.example",
                                  "10.0.0.1:{port}", "[::2]:{port}", "localhost.evil.example"])
def test_a_foreign_host_header_is_refused_with_421_json(server, host):
    response = requests.get(server.url + "/status", timeout=5,
                            headers={"Host": host.format(port=server.port)})

    assert response.status_code == 421
    assert response.headers["Content-Type"].startswith("application/json")
    assert "is not this server" in response.json()["error"]


@pytest.mark.parametrize("host", ["evil example", "a:b:c", "[nope]:80", ""])
def test_a_malformed_host_header_is_refused_with_400_json(server, host):
    response = requests.get(server.url + "/status", timeout=5, headers={"Host": host})

    assert response.status_code == 400
    assert response.json() == {"error": "a valid Host header is required"}


def test_a_request_without_host_header_is_refused_with_400_json(server):
    status, headers, body = raw_get(server.port, b"GET /status HTTP/1.0\r\n\r\n")

    assert status == 400 and headers["content-type"].startswith("application/json")
    assert json.loads(body) == {"error": "a valid Host header is required"}


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.1:{port}", "localhost",
                                  "LOCALHOST:{port}", "localhost.:{port}"])
def test_the_bound_address_or_localhost_with_or_without_port_is_served(server, host):
    response = requests.get(server.url + "/status", timeout=5,
                            headers={"Host": host.format(port=server.port)})

    assert response.status_code == 200 and response.json()["state"] == "running"


def test_a_configured_host_name_is_served_and_others_still_refused(state_dir):
    names = ["status.lan", "192.168.7.7", "[fd00::7]"]
    with start_http("127.0.0.1:0", state_dir, allowed_hosts=names) as handle:
        served = [requests.get(handle.url + "/status", timeout=5, headers={"Host": host})
                  for host in ("status.lan", f"Status.LAN:{handle.port}", "192.168.7.7:80",
                               f"[fd00::7]:{handle.port}")]
        foreign = requests.get(handle.url + "/status", timeout=5, headers={"Host": "evil.lan"})

    assert [r.status_code for r in served] == [200, 200, 200, 200]
    assert foreign.status_code == 421


def test_the_host_list_comes_from_the_environment_when_not_given(state_dir, monkeypatch):
    monkeypatch.setenv(HOSTS_ENV, " status.lan , ,pi.local")
    with start_http("127.0.0.1:0", state_dir) as handle:
        codes = [requests.get(handle.url + "/status", timeout=5, headers={"Host": host})
                 .status_code for host in ("pi.local", "status.lan:8080", "other.lan")]

    assert codes == [200, 200, 421]


@pytest.mark.parametrize("text", ["status lan", "a:b:c", "http://status.lan", "x" * 300])
def test_a_malformed_host_list_raises_configuration_error(state_dir, monkeypatch, text):
    monkeypatch.setenv(HOSTS_ENV, f"ok.lan,{text}")

    with pytest.raises(ConfigurationError, match=HOSTS_ENV) as info:
        start_http("127.0.0.1:0", state_dir)

    assert len(str(info.value)) < 200 and "\n" not in str(info.value)


def test_the_host_guard_runs_before_the_token_check(state_dir):
    with start_http("127.0.0.1:0", state_dir, token="t0ken") as handle:
        foreign = requests.get(handle.url + "/status", timeout=5,
                               headers={"Host": "evil.example", "Authorization": "Bearer t0ken"})
        local = requests.get(handle.url + "/status", timeout=5,
                             headers={"Host": "localhost", "Authorization": "Bearer t0ken"})

    assert foreign.status_code == 421 and local.status_code == 200


def ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_an_ipv6_bind_serves_its_bracketed_address_and_refuses_others(state_dir):
    with start_http("[::1]:0", state_dir) as handle:
        served = [requests.get(handle.url + "/status", timeout=5, headers={"Host": host})
                  for host in (f"[::1]:{handle.port}", "[::1]", "[0:0::1]", "localhost")]
        plain = requests.get(handle.url + "/status", timeout=5)
        foreign = requests.get(handle.url + "/status", timeout=5,
                               headers={"Host": "[::2]"})
        missing = raw_get(handle.port, b"GET /status HTTP/1.0\r\n\r\n", host="::1")

    assert [r.status_code for r in served] == [200] * 4 and plain.status_code == 200
    assert foreign.status_code == 421 and missing[0] == 400
