"""A daemon's start-up checks: what the state directory holds, and the first contact.

Nothing here writes before the start has checked everything it can (see
:mod:`live.session.paper`):

- :func:`state_session` reads (never writes) the session a state directory holds, if any;
- :func:`check_resume` refuses a config that differs from it in a fixed fact (the
  portfolio included), and an older session whose held weights would mix two bases;
- :func:`first_contact` checks the keys at the trading endpoint, and for a new session reads
  the facts it starts from (:func:`session_facts`);
- :func:`open_journal` is the first write: a new session's facts and bundle, in one
  transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import requests
from alpaca.common.exceptions import APIError

from ensemble_bt.errors import BrokerError, ConfigurationError
from live.alpaca.endpoints import shown_url
from live.alpaca.store import AlpacaStore
from live.session.bundles import check_journal_bundles
from live.session.config import PaperConfig, portfolio_facts
from live.session.exports import check_session
from live.session.journal import JOURNAL_FILE, SESSION_KEY, Journal
from live.session.lock import LOCK_FILE
from live.session.portfolio import WEIGHT_BASIS, check_weight_basis, session_portfolio

FIXED_KEYS = ("symbols", "strategy_id", "horizon")
KEY_REFUSED = (401, 403)


def now_iso() -> str:
    """Now, in UTC, as the journal and the exports stamp it (ISO 8601, whole seconds)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def state_session(folder: Path) -> dict[str, Any] | None:
    """The session a state directory holds, or None for a new one; reads, never writes.

    A missing or empty directory, one holding only the lock file, and one whose journal is
    blank (a start killed between creating the journal and writing its session) all start a
    new session.  A journal with a session is checked: it is ours, its facts are complete
    and every bundle it traded is there unchanged.

    Raises
    ------
    ConfigurationError
        ``folder`` is a file, or a directory with other files and no journal.
    DataError, BundleError
        The journal is not ours, is another schema version or is incomplete; a bundle it
        traded is gone or changed.
    """
    if folder.exists() and not folder.is_dir():
        raise ConfigurationError(f"--state {folder}: not a directory")
    path = folder / JOURNAL_FILE
    if path.exists():
        if path.is_file() and path.stat().st_size == 0:
            return None
        journal = Journal(path, readonly=True)
        try:
            if journal.is_blank():
                return None
            session = check_session(journal.get_meta(SESSION_KEY), path)
            check_journal_bundles(journal)
            return session
        finally:
            journal.close()
    if folder.is_dir() and any(p.name != LOCK_FILE for p in folder.iterdir()):
        raise ConfigurationError(f"--state {folder}: not empty and holds no journal; choose a "
                                 "new directory or the state directory of a session")
    return None


def session_facts(store: AlpacaStore, cfg: PaperConfig) -> dict[str, Any]:
    """The fixed facts a new session starts from: the account's clock, cash and positions.

    ``portfolio`` is the config's (:meth:`PaperConfig.checked_portfolio`), and
    ``allocations`` its allocations, as sessions before portfolios journaled them.
    """
    portfolio = cfg.checked_portfolio()
    account = store.trading.get_account()
    trade_start = store.clock_day()
    positions = {p.symbol: float(p.qty) for p in store.trading.get_all_positions()}
    return {
        "symbols": list(cfg.symbols), "strategy_id": cfg.strategy_id, "horizon": cfg.horizon,
        "trade_start": trade_start.date().isoformat(),
        "history_start": (trade_start - pd.Timedelta(days=cfg.history_days)).date().isoformat(),
        "commission": cfg.commission, "slippage": cfg.slippage,
        "allocations": portfolio.allocations, "portfolio": portfolio_facts(portfolio),
        "weight_basis": WEIGHT_BASIS, "sizing": cfg.sizing.model_dump(mode="json"),
        "initial_cash": float(account.cash), "initial_positions": positions,
        "replay": store.replay, "created": now_iso(),
    }


def first_contact(store: AlpacaStore, cfg: PaperConfig,
                  session: dict[str, Any] | None) -> dict[str, Any]:
    """Check the keys at the trading endpoint before anything is written.

    Parameters
    ----------
    store : AlpacaStore
        Not started yet: only its REST client is used.
    cfg : PaperConfig
    session : dict | None
        The session to resume, or None for a new one.

    Returns
    -------
    dict
        ``session`` when resuming, else the new session's facts (:func:`session_facts`).

    Raises
    ------
    ConfigurationError
        The endpoint refused the keys (401 or 403).
    BrokerError
        The endpoint cannot be reached or failed otherwise (worth a retry later).
    """
    where = shown_url(store.trading_url)
    try:
        if session is None:
            return session_facts(store, cfg)
        store.trading.get_account()
        return session
    except APIError as exc:
        if exc.status_code in KEY_REFUSED:
            raise ConfigurationError(
                f"{where} refused the keys in APCA_API_KEY_ID / APCA_API_SECRET_KEY (HTTP "
                f"{exc.status_code}); export the keys of this endpoint's account") from None
        raise BrokerError(f"{where} failed at start (HTTP {exc.status_code}: "
                          f"{str(exc)[:120]})") from None
    except requests.RequestException as exc:
        raise BrokerError(f"cannot reach {where} ({type(exc).__name__}); check the network "
                          "and alpaca.trading_url") from None
    except ValueError as exc:  # a reply alpaca-py cannot parse: not Alpaca's trading API
        raise BrokerError(f"{where} did not answer as Alpaca's trading API "
                          f"({type(exc).__name__}); check alpaca.trading_url") from None


def open_journal(folder: Path, cfg: PaperConfig, session: dict[str, Any],
                 manifest_sha: str, resuming: bool) -> Journal:
    """The state directory's journal; a new session's facts and bundle are written first."""
    journal = Journal(folder / JOURNAL_FILE)
    if not resuming:
        journal.start_session(session, str(cfg.bundle), manifest_sha, now_iso())
    return journal


def check_resume(session: dict[str, Any], cfg: PaperConfig, journal: Path) -> None:
    """Refuse a config that differs from the journaled session in a fixed fact.

    The fixed facts are :data:`FIXED_KEYS` and the portfolio (a session journaled before
    portfolios has its ``allocations`` as one).  An older session whose held weights were
    over the account is refused too (:func:`live.session.portfolio.check_weight_basis`).
    """
    current = {"symbols": list(cfg.symbols), "strategy_id": cfg.strategy_id,
               "horizon": cfg.horizon}
    for key in FIXED_KEYS:
        if session[key] != current[key]:
            raise ConfigurationError(f"the config's {key} {current[key]!r} differs from the "
                                     f"session's {session[key]!r}; resume with the same config "
                                     "or use a new --state directory")
    mine, theirs = (portfolio_facts(cfg.effective_portfolio()),
                    portfolio_facts(session_portfolio(session)))
    if mine != theirs:
        raise ConfigurationError(f"the config's portfolio {mine} differs from the session's "
                                 f"{theirs}; resume with the same config or use a new --state "
                                 "directory")
    check_weight_basis(session, journal, "resume")
