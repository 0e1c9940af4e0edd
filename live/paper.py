"""One paper-trading session: the unchanged ``EnsembleStrategy`` on Alpaca's feed and broker.

``run_paper`` wires cerebro exactly as the backtester does (:mod:`backtests.engine`), except
that the feeds and the broker come from an :class:`~live.alpaca_store.AlpacaStore`.  With
``replay`` it first starts the local Alpaca-protocol server over embedded datasets and points
every client at it: the full live path, offline.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import backtrader as bt
import pandas as pd
from loguru import logger

from live.alpaca_store import AlpacaStore
from live.paper_config import PaperConfig, credentials_from_env
from live.session_files import LatencyRecorder, write_session
from models.artifacts import MANIFEST, load_bundle, sha256_file
from models.errors import ConfigurationError
from models.features import FEATURE_NAMES
from models.signal import VintageSignal
from models.vintages import fixed_vintage
from sizing.sizers import KellySizer
from strategies.analyzers import RunRecorder
from strategies.strategy import DECISION_FIELDS, EnsembleStrategy

FAR_FUTURE = pd.Timestamp("2200-01-01")


def bundle_signal(bundle: str | Path, horizon: int, trade_start: pd.Timestamp,
                  ) -> tuple[VintageSignal, str]:
    """The bundle as one vintage predicting from ``trade_start`` on, and its manifest hash.

    Raises
    ------
    ConfigurationError
        ``trade_start`` is not after the bundle's training window (that would be in-sample).
    """
    model, manifest = load_bundle(Path(bundle), feature_names=FEATURE_NAMES, horizon=horizon)
    window = manifest.get("training_window")
    if not isinstance(window, dict) or not {"start", "end", "rows"} <= set(window):
        raise ConfigurationError(f"{bundle}: the manifest has no training window; retrain it "
                                 "with `ensemble-bt train`")
    train_end = pd.Timestamp(window["end"])
    if trade_start <= train_end:
        raise ConfigurationError(
            f"the session starts {trade_start.date()}, inside the bundle's training window "
            f"(labels through {train_end.date()}); trade a bundle out of sample only: use a "
            f"later --from or a bundle trained with an earlier --end")
    vintage = fixed_vintage(model, manifest, str(bundle), horizon=horizon,
                            predict_start=trade_start, predict_end=FAR_FUTURE)
    return VintageSignal([vintage]), sha256_file(Path(bundle) / MANIFEST)


@contextlib.contextmanager
def replay_server(datasets: Sequence[str], start: date | None, cfg: PaperConfig,
                  key_id: str, secret: str, **server_kwargs: Any) -> Iterator[PaperConfig]:
    """Serve ``datasets`` on 127.0.0.1 and yield ``cfg`` pointed at that server."""
    from backtests.datasets import load_dataset
    from live.sim_server import build_app, serve

    frames = {}
    for name in datasets:
        frame = load_dataset(name)
        frames[str(frame.attrs.get("symbol", name)).upper()] = frame
    try:
        app = build_app(frames, key_id=key_id, secret=secret, start=start,
                        cash=cfg.initial_cash, commission=cfg.commission,
                        slippage=cfg.slippage, **server_kwargs)
    except ValueError as exc:
        raise ConfigurationError(f"--replay {','.join(datasets)}: {exc}") from None
    with serve(app) as server:
        endpoints = cfg.alpaca.model_copy(update={
            "trading_url": server.url, "data_url": server.url,
            "data_stream_url": f"{server.ws_url}/v2/{cfg.alpaca.feed}",
            "trading_stream_url": f"{server.ws_url}/stream", "stream_bars": "bars"})
        yield cfg.model_copy(update={"symbols": tuple(frames), "alpaca": endpoints})


def check_state(path: str | Path) -> Path:
    """The session's state directory, refused when it already holds something."""
    folder = Path(path)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ConfigurationError(f"--state {folder}: holds an earlier session; choose a new "
                                 "directory (parity reads a finished one as it is)")
    return folder


def state_folder(path: str | Path) -> Path:
    """Create the session's state directory (checked by :func:`check_state`)."""
    folder = check_state(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(f"--state {folder}: cannot create it ({exc.strerror})") from None
    return folder


def run_paper(cfg: PaperConfig, *, replay: Sequence[str] | None = None,
              replay_from: date | None = None, max_bars: int | None = None,
              state: str | Path | None = None, **server_kwargs: Any) -> Path:
    """Run a paper session to its end (replay) or until interrupted; returns its folder."""
    # Check the bundle (and a replay's start against its training window) before anything
    # connects or logs: bad input fails in one line.
    bundle_signal(cfg.bundle, cfg.horizon, pd.Timestamp(replay_from or FAR_FUTURE))
    check_state(state or cfg.state_dir)
    if replay:
        key_id, secret = credentials_from_env(default=("replay", secrets.token_hex(16)))
        with replay_server(replay, replay_from, cfg, key_id, secret, **server_kwargs) as local:
            return _session(local, key_id, secret, True, max_bars, state)
    key_id, secret = credentials_from_env()
    return _session(cfg, key_id, secret, False, max_bars, state)


def _session(cfg: PaperConfig, key_id: str, secret: str, replay: bool, max_bars: int | None,
             state: str | Path | None) -> Path:
    store = AlpacaStore(key_id, secret, cfg.alpaca, replay=replay, max_advances=max_bars)
    trade_start = store.clock_day()
    signal, manifest_hash = bundle_signal(cfg.bundle, cfg.horizon, trade_start)
    history_start = trade_start - pd.Timedelta(days=cfg.history_days)
    allocations = cfg.checked_allocations()
    folder = state_folder(state or cfg.state_dir)
    logger.info("paper session {} from {} ({}), state in {}", ",".join(cfg.symbols),
                trade_start.date(), "local replay" if replay else "Alpaca paper", folder)

    cerebro = bt.Cerebro(stdstats=False, quicknotify=False)
    for symbol in cfg.symbols:
        cerebro.adddata(store.getdata(symbol, history_start=history_start,
                                      live_from=trade_start))
    cerebro.setbroker(store.getbroker(commission_rate=cfg.commission,
                                      strategy_id=cfg.strategy_id))
    cerebro.addsizer(KellySizer, allocations=allocations)
    cerebro.addstrategy(EnsembleStrategy, signals=dict.fromkeys(cfg.symbols, signal),
                        horizon=cfg.horizon, trade_start=trade_start.date(), sizing=cfg.sizing)
    cerebro.addanalyzer(RunRecorder, _name="recorder")
    cerebro.addanalyzer(LatencyRecorder, _name="latency", live_from=trade_start)
    meta = {"symbols": list(cfg.symbols), "trade_start": trade_start.date().isoformat(),
            "history_start": history_start.date().isoformat(), "bundle": str(cfg.bundle),
            "bundle_manifest_sha256": manifest_hash, "horizon": cfg.horizon,
            "commission": cfg.commission, "slippage": cfg.slippage, "replay": replay,
            "allocations": allocations, "strategy_id": cfg.strategy_id,
            "sizing": cfg.sizing.model_dump(mode="json")}
    strat = None
    try:
        strat = cerebro.run()[0]
    finally:
        _record(folder, meta, store, cerebro, strat)
    return folder


def _record(folder: Path, meta: dict[str, Any], store: AlpacaStore, cerebro: bt.Cerebro,
            strat: Any) -> None:
    broker = store.broker
    if strat is None:  # interrupted: record what the running strategy saw
        running = getattr(cerebro, "runningstrats", None)
        if not running:
            return
        strat = running[0]
    analysis = strat.analyzers.recorder.get_analysis()
    meta.update({"initial_cash": broker.startingcash,
                 "initial_positions": broker.initial_positions,
                 "final_cash": broker.getcash(), "final_equity": broker.getvalue(),
                 "live_bars": len(strat.analyzers.latency.rows),
                 "finished": bool(store.finished)})
    decisions = [dict(zip(DECISION_FIELDS, (bt.num2date(r[0]).date(), *r[1:]), strict=True))
                 for r in strat.decisions]
    write_session(folder, meta, list(store.feeds.values()), analysis, decisions,
                  broker.submitted, strat.analyzers.latency.rows)
    logger.info("session recorded: {} live bars, {} fills, equity {:.2f}", meta["live_bars"],
                len(analysis["orders"]), meta["final_equity"])
