"""The daemon's page with 5,000 journaled bars: server time of ``GET /`` against ``GET /status``.

A state directory of :data:`BARS` decided bars (two symbols, one order a week) is written
through the journal as the daemon writes it, then served by :func:`live.monitor.http.start_http`
on 127.0.0.1.  Timed, in the same process:

- ``GET /status``: the baseline;
- ``GET /`` on a fresh server (``cold``: the charts are drawn), then again (``warm``: the
  charts come from the per-bar cache, as for every refresh between two bars);
- ``GET /dashboard.json`` as the page's script asks for it (charts already held).

Server time is the request's wall time on loopback; the figures are medians of ``rounds``.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import requests

from live.monitor.http import start_http
from live.monitor.status import write_status
from live.session.journal import JOURNAL_FILE, Journal
from sizing.breaker import BreakerState
from sizing.decisions import DECISION_FIELDS

NAME = "dashboard"
BARS = 5000
ROUNDS = 15
SYMBOLS = ("AAA", "BBB")


def build_state(folder: Path, bars: int = BARS) -> Path:
    journal = Journal(folder / JOURNAL_FILE)
    journal.set_meta("session", {"symbols": list(SYMBOLS), "trade_start": "2000-01-03",
                                 "sizing": {"drawdown_circuit_breaker": 0.25}})
    bundle = journal.add_bundle("/bundles/AAA", "ab" * 32, "2000-01-03", "2000-01-01")
    equity, high = 100_000.0, 100_000.0
    for k, day in enumerate(pd.bdate_range("2000-01-03", periods=bars).strftime("%Y-%m-%d")):
        equity *= 1.0 + 0.01 * ((k * 7919) % 13 - 6) / 6
        high = max(high, equity)
        rows = [(*({"date": day, "symbol": s, "prediction": 0.001, "target_weight": 0.5}
                   .get(f, 0.0) for f in DECISION_FIELDS), bundle) for s in SYMBOLS]
        breaker = BreakerState(high, 1 - equity / high)
        journal.record_bar_step([(s, day, 10.0, 11.0, 9.0, 10.5, 1e6) for s in SYMBOLS], rows,
                                (day, equity, equity / 2, high, 1 - equity / high,
                                 breaker.to_json()))
        if k % 5 == 0:
            cid = f"ens-AAA-{day}-1"
            journal.record_intent(cid, "AAA", "buy", 1.0, day)
            journal.record_order(cid, f"o{k}", "filled", 1.0, 10.0, day)
    journal.close()
    write_status(folder, {"updated": "2019-01-01T00:00:00+00:00", "state": "running",
                          "symbols": list(SYMBOLS), "last_bar": day, "equity": equity,
                          "breaker": json.loads(breaker.to_json())})
    return folder


def _time(url: str, rounds: int, params: dict | None = None) -> list[float]:
    out = []
    for _ in range(rounds):
        started = time.perf_counter()
        reply = requests.get(url, params=params, timeout=60)
        out.append((time.perf_counter() - started) * 1000.0)
        reply.raise_for_status()
    return out


def run(rounds: int = ROUNDS, **_: Any) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        state = build_state(Path(tmp))
        with start_http("127.0.0.1:0", state) as http:
            requests.get(http.url + "/status", timeout=60)  # connection and imports warm
            status = statistics.median(_time(http.url + "/status", rounds))
            cold = _time(http.url + "/", 1)[0]
            warm = statistics.median(_time(http.url + "/", rounds))
            version = requests.get(http.url + "/dashboard.json", timeout=60).json()
            refresh = statistics.median(_time(http.url + "/dashboard.json", rounds,
                                              {"charts": version["charts_version"]}))
    row = {"bars": BARS, "status_ms": round(status, 2), "page_cold_ms": round(cold, 1),
           "page_warm_ms": round(warm, 1), "refresh_ms": round(refresh, 1),
           "page_cold_ratio": round(cold / status, 1), "page_warm_ratio": round(warm / status, 1),
           "refresh_ratio": round(refresh / status, 1)}
    text = (f"== {NAME}: page with {BARS} journaled bars ({rounds} rounds, medians)\n"
            f"GET /status {status:.1f} ms; GET / cold {cold:.1f} ms ({row['page_cold_ratio']}x),"
            f" warm {warm:.1f} ms ({row['page_warm_ratio']}x); GET /dashboard.json "
            f"{refresh:.1f} ms ({row['refresh_ratio']}x)")
    return {"name": NAME, "rows": [row], "text": text}


if __name__ == "__main__":
    print(run()["text"])
