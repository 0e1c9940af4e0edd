"""``ensemble-bt paper``: check the input, then run the daemon (:mod:`live.daemon`).

The daemon wires cerebro as the backtester does (:mod:`backtests.engine`), except that the
feeds and the broker come from an :class:`~live.alpaca_store.AlpacaStore`.  With ``replay``
it first starts the local Alpaca-protocol server over datasets in this process and points every
client at it: the full live path, offline.  ``alpaca.sim: true`` drives a server running in
its own process (``ensemble-bt sim-server``) the same way, and that session can be resumed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from live.alpaca_store import AlpacaStore
from live.daemon import (
    FAR_FUTURE,
    Daemon,
    check_history,
    check_journal_bundles,
    log_file,
    open_state,
    resumed_session,
)
from live.http_api import TOKEN_ENV, check_binding, parse_address, start_http
from live.journal import JOURNAL_FILE, Journal
from live.paper_config import PaperConfig, credentials_from_env
from models.artifacts import MANIFEST, load_bundle, sha256_file
from models.errors import ConfigurationError
from models.features import FEATURE_NAMES
from models.signal import VintageSignal
from models.vintages import fixed_vintage


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


def check_live(cfg: PaperConfig) -> None:
    """Real money needs ``allow_live: true`` and ``ENSEMBLE_BT_ALLOW_LIVE=1``, both."""
    if cfg.alpaca.paper:
        return
    if not (cfg.allow_live and os.environ.get("ENSEMBLE_BT_ALLOW_LIVE") == "1"):
        raise ConfigurationError("alpaca.paper is false (Alpaca's live-money endpoint): that "
                                 "needs allow_live: true in the config and "
                                 "ENSEMBLE_BT_ALLOW_LIVE=1 in the environment")


def preflight(cfg: PaperConfig, folder: Path, replay: bool, replay_from: date | None,
              http: str | None = None) -> tuple[bool, str]:
    """Every check that can fail on bad input, before anything connects or logs.

    Returns ``(resuming, manifest_sha256 of the config's bundle)``.
    """
    check_live(cfg)
    if http is not None:
        host, _ = parse_address(http)
        check_binding(host, os.environ.get(TOKEN_ENV))
    if (folder / JOURNAL_FILE).is_file():
        if replay:
            raise ConfigurationError(f"--state {folder}: --replay cannot resume a session (its "
                                     "server's state ended with it); run `ensemble-bt "
                                     "sim-server --state` in its own process and set "
                                     "alpaca.sim: true")
        journal = Journal(folder / JOURNAL_FILE)
        try:
            resumed_session(journal, cfg)
            check_journal_bundles(journal)
        finally:
            journal.close()
        return True, ""
    signal, sha = bundle_signal(cfg.bundle, cfg.horizon,
                                pd.Timestamp(replay_from or FAR_FUTURE))
    check_history(signal.vintages[0].model, cfg.history_days, cfg.bundle)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ConfigurationError(f"--state {folder}: not empty and holds no journal; choose a "
                                 "new directory or the state directory of a session")
    return False, sha


def run_paper(cfg: PaperConfig, *, replay: Sequence[str] | None = None,
              replay_from: date | None = None, max_bars: int | None = None,
              state: str | Path | None = None, http: str | None = None,
              **server_kwargs: Any) -> Path:
    """Run (or resume) a paper session until the replay ends or a signal stops it.

    Returns the state directory.
    """
    folder = Path(state or cfg.state_dir)
    resuming, sha = preflight(cfg, folder, bool(replay), replay_from, http)
    if replay:
        key_id, secret = credentials_from_env(default=("replay", secrets.token_hex(16)))
        with replay_server(replay, replay_from, cfg, key_id, secret, **server_kwargs) as local:
            return _run(local, (key_id, secret), True, max_bars, folder, sha, http)
    key_id, secret = credentials_from_env()
    return _run(cfg, (key_id, secret), cfg.alpaca.sim, max_bars, folder, sha, http)


def _run(cfg: PaperConfig, keys: tuple[str, str], sim: bool, max_bars: int | None,
         folder: Path, sha: str, http: str | None) -> Path:
    folder, resuming = open_state(folder)
    with contextlib.ExitStack() as stack:
        stack.enter_context(log_file(folder))
        if http is not None:
            stack.enter_context(start_http(http, folder, os.environ.get(TOKEN_ENV)))
        store = AlpacaStore(*keys, cfg.alpaca, replay=sim, max_advances=max_bars,
                            decision_delay_minutes=cfg.decision_delay_minutes)
        return Daemon(cfg, store, folder, resuming, sha).run()
