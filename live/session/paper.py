"""``ensemble-bt paper``: check the input, then run the daemon (:mod:`live.session.daemon`).

The daemon wires cerebro as the backtester does (:mod:`backtests.engine`), except that the
feeds and the broker come from an :class:`~live.alpaca.store.AlpacaStore`.  With ``replay``
it first starts the local Alpaca-protocol server over datasets in this process and points every
client at it: the full live path, offline.  ``alpaca.sim: true`` drives a server running in
its own process (``ensemble-bt sim-server``) the same way, and that session can be resumed.

A start checks everything before its first write, so a failed start changes nothing:

1. offline (:func:`preflight`): no other daemon holds the state directory, the trading
   endpoints are not live money without both opt-ins, the HTTP address, the state directory
   and its journal (read-only; a resume with other fixed facts, the portfolio included, is
   refused), the bundle; then the keys are present, and the portfolio fits the symbols;
2. holding the directory's lock (:func:`live.session.lock.claim_state`): the ``--http`` port
   binds and the trading endpoint accepts the keys (:func:`live.session.startup.first_contact`).

Only then is the journal written.  A failure in step 2 gives the directory back as it was.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from ensemble_bt.errors import ConfigurationError
from live.aiothread import parse_address
from live.alpaca.keys import credentials_from_env
from live.alpaca.store import AlpacaStore
from live.monitor.bearer import TOKEN_ENV, check_binding
from live.monitor.hostguard import hosts_from_env
from live.monitor.http import start_http
from live.session.bundles import FAR_FUTURE, bundle_signal, check_history
from live.session.config import PaperConfig, check_live
from live.session.daemon import Daemon, log_file
from live.session.journal import JOURNAL_FILE
from live.session.lock import claim_state, probe_lock
from live.session.startup import check_resume, first_contact, open_journal, state_session


@contextlib.contextmanager
def replay_server(datasets: Sequence[str], start: date | None, cfg: PaperConfig,
                  key_id: str, secret: str, **server_kwargs: Any) -> Iterator[PaperConfig]:
    """Serve ``datasets`` on 127.0.0.1 and yield ``cfg`` pointed at that server."""
    from backtests.datasets import load_datasets
    from live.sim.server import build_app, serve

    frames = load_datasets(datasets, "--replay")
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


@dataclass(frozen=True)
class StartPlan:
    """What :func:`preflight` found, for the start to act on.

    Attributes
    ----------
    session : dict | None
        The journaled session to resume; None starts a new one.
    manifest_sha : str
        The manifest hash of the config's bundle (new sessions only, else empty).
    """

    session: dict[str, Any] | None
    manifest_sha: str


def preflight(cfg: PaperConfig, folder: Path, replay: bool, replay_from: date | None,
              http: str | None = None) -> StartPlan:
    """Every check that needs no connection, before anything connects, logs or writes.

    Raises
    ------
    ConfigurationError, DataError, BundleError
        The input is wrong; nothing was written.
    """
    probe_lock(folder)
    if not replay:  # --replay points every client at its own loopback server
        check_live(cfg)
    if http is not None:
        host, _ = parse_address(http)
        check_binding(host, os.environ.get(TOKEN_ENV))
        hosts_from_env()  # a malformed ENSEMBLE_BT_HTTP_HOSTS is refused before any write
    session = state_session(folder)
    if session is not None:
        if replay:
            raise ConfigurationError(f"--state {folder}: --replay cannot resume a session (its "
                                     "server's state ended with it); run `ensemble-bt "
                                     "sim-server --state` in its own process and set "
                                     "alpaca.sim: true")
        check_resume(session, cfg, folder / JOURNAL_FILE)
        return StartPlan(session, "")
    signal, sha = bundle_signal(cfg.bundle, cfg.horizon,
                                pd.Timestamp(replay_from or FAR_FUTURE))
    check_history(signal.vintages[0].model, cfg.history_days, cfg.bundle)
    return StartPlan(None, sha)


def run_paper(cfg: PaperConfig, *, replay: Sequence[str] | None = None,
              replay_from: date | None = None, max_bars: int | None = None,
              state: str | Path | None = None, http: str | None = None,
              **server_kwargs: Any) -> Path:
    """Run (or resume) a paper session until the replay ends or a signal stops it.

    Returns the state directory.
    """
    folder = Path(state or cfg.state_dir)
    plan = preflight(cfg, folder, bool(replay), replay_from, http)
    if replay:
        key_id, secret, _ = credentials_from_env(default=("replay", secrets.token_hex(16)))
        with replay_server(replay, replay_from, cfg, key_id, secret, **server_kwargs) as local:
            return _run(local, (key_id, secret), True, max_bars, folder, plan, http)
    key_id, secret, _ = credentials_from_env()
    return _run(cfg, (key_id, secret), cfg.alpaca.sim, max_bars, folder, plan, http)


def _run(cfg: PaperConfig, keys: tuple[str, str], sim: bool, max_bars: int | None,
         folder: Path, plan: StartPlan, http: str | None) -> Path:
    cfg.checked_portfolio()  # against the effective symbols (--replay names its own)
    with contextlib.ExitStack() as stack:
        claim = stack.enter_context(claim_state(folder))
        if (state_session(folder) is None) != (plan.session is None):
            raise ConfigurationError(f"--state {folder}: another process changed the state "
                                     "directory while this one started; start again")
        if http is not None:
            stack.enter_context(start_http(http, folder, os.environ.get(TOKEN_ENV)))
        store = AlpacaStore(*keys, cfg.alpaca, replay=sim, max_advances=max_bars,
                            decision_delay_minutes=cfg.decision_delay_minutes)
        session = first_contact(store, cfg, plan.session)
        journal = open_journal(folder, cfg, session, plan.manifest_sha,
                               resuming=plan.session is not None)
        claim.commit()
        stack.enter_context(log_file(folder))
        return Daemon(cfg, store, folder, journal, session).run()
