"""``ensemble-bt data``: fetch 10 symbols x 10 years from the local server, then update.

Each round starts an ``ensemble-bt sim-server`` subprocess (so that the server does not share
this process's interpreter) that has shown 10 synthetic symbols 2,520 sessions each, 25,200
bars.  After one untimed fetch (imports, first connections), the ``data`` commands' own
functions (:mod:`live.datastore`, alpaca-py underneath) run in this process:

- ``fetch``: the 10 symbols whole, into a fresh store (3 pages of 10,000 bars, plus the
  assets, clock and calendar requests, validation and the atomic write);
- ``update`` after ``POST /sim/advance``: one new session per symbol (one bars request for
  the overlapping and the new bar of every symbol, validation, the atomic write).

Figures: the fetch's bars/s, and the update's wall time as a ratio to the full fetch.  The
reference timed in the same round is reading the fetched symbols back from the store
(``load_dataset("store:SYM")``, sha256 check and validation included).
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

NAME = "data_store"
ROOT = Path(__file__).resolve().parents[1]
SYMBOLS = tuple(f"S{i:02d}" for i in range(10))
SESSIONS = 2520  # ten years of sessions
ROUNDS = 3
KEY, SECRET = "bench-key", "bench-secret"


def _server(folder: Path) -> tuple[subprocess.Popen, str]:
    from backtests.synthetic import random_walk, write_csv

    args = []
    for i, symbol in enumerate(SYMBOLS):
        bars = random_walk(n=SESSIONS + 1, seed=100 + i)
        args += ["--data", str(write_csv(bars, folder / f"{symbol}.csv"))]
        start = bars.index[SESSIONS - 1].date().isoformat()
    env = {**os.environ, "APCA_API_KEY_ID": KEY, "APCA_API_SECRET_KEY": SECRET}
    proc = subprocess.Popen([sys.executable, "-m", "ensemble_bt.cli", "--log-level", "WARNING",
                             "sim-server", *args, "--from", start, "--port", "0"], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith("http://"):
        proc.kill()
        raise RuntimeError(f"sim-server did not start: {line!r}")
    return proc, line.split()[0]


def _bar_requests(url: str) -> int:
    status = requests.get(f"{url}/sim/status", timeout=10, headers={
        "APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}).json()
    return int(status["requests"].get("GET /v2/stocks/bars", 0))


def _round(url: str, folder: Path) -> dict[str, float]:
    from backtests.datasets import load_dataset
    from backtests.store import STORE_ENV, BarStore
    from live.alpaca.history import AlpacaHistory
    from live.datastore import FetchPlan, fetch, update

    def quiet(line: str) -> None:
        pass

    store = BarStore(folder)
    history = AlpacaHistory(KEY, SECRET, data_url=url)
    plan = FetchPlan(SYMBOLS, None, None, "iex", "all")
    fetch(BarStore(folder.with_name("warm-up")), history, plan, quiet, progress=False)
    requests_before = _bar_requests(url)
    started = time.perf_counter()
    fetch(store, history, plan, quiet, progress=False)
    fetch_s = time.perf_counter() - started
    fetch_requests = _bar_requests(url) - requests_before
    os.environ[STORE_ENV] = str(folder)
    started = time.perf_counter()
    rows = sum(len(load_dataset(f"store:{s}")) for s in SYMBOLS)
    read_s = time.perf_counter() - started
    requests.post(f"{url}/sim/advance", timeout=10, headers={
        "APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}).raise_for_status()
    requests_before = _bar_requests(url)
    started = time.perf_counter()
    update(store, history, (), quiet, progress=False)
    update_s = time.perf_counter() - started
    return {"fetch_s": fetch_s, "update_s": update_s, "read_s": read_s, "bars": rows,
            "fetch_bar_requests": fetch_requests,
            "update_bar_requests": _bar_requests(url) - requests_before}


def run(rounds: int = ROUNDS, **_: Any) -> dict:
    from loguru import logger

    logger.remove()
    results = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            proc, url = _server(Path(tmp))
            try:
                results.append(_round(url, Path(tmp) / "store"))
            finally:
                proc.send_signal(signal.SIGINT)
                proc.wait(timeout=60)
    fetch_s = statistics.median(r["fetch_s"] for r in results)
    update_s = statistics.median(r["update_s"] for r in results)
    read_s = statistics.median(r["read_s"] for r in results)
    bars = results[-1]["bars"]
    row = {"symbols": len(SYMBOLS), "sessions": SESSIONS, "bars": bars, "rounds": rounds,
           "fetch_s": round(fetch_s, 3), "fetch_bars_per_s": round(bars / fetch_s),
           "update_s": round(update_s, 3), "update_to_fetch": round(update_s / fetch_s, 3),
           "read_bars_per_s": round(bars / read_s),
           "fetch_bar_requests": results[-1]["fetch_bar_requests"],
           "update_bar_requests": results[-1]["update_bar_requests"],
           "all_fetch_s": [round(r["fetch_s"], 3) for r in results],
           "all_update_s": [round(r["update_s"], 3) for r in results]}
    text = "\n".join([
        f"== {NAME}: fetch {len(SYMBOLS)} symbols x {SESSIONS} sessions ({bars} bars) from a "
        f"local sim-server, {rounds} rounds (medians)",
        f"{'fetch':<28} {row['fetch_s']:>8.3f} s  {row['fetch_bars_per_s']:>8} bars/s  "
        f"({row['fetch_bar_requests']} bars requests)",
        f"{'update (+1 session each)':<28} {row['update_s']:>8.3f} s  "
        f"{row['update_to_fetch']:>8.3f} of the fetch  ({row['update_bar_requests']} bars "
        "request)",
        f"{'read back from the store':<28} {read_s:>8.3f} s  {row['read_bars_per_s']:>8} "
        "bars/s"])
    return {"name": NAME, "rows": [row], "text": text}


if __name__ == "__main__":
    print(run()["text"])
