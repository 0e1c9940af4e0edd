"""``ensemble-bt data fetch``, ``data update`` and ``data list``: the local bar store.

The arguments are checked here, then the keys (``APCA_API_KEY_ID``, ``APCA_API_SECRET_KEY``),
before anything is imported that talks to Alpaca or anything is written.
"""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import urlsplit

from ensemble_bt.errors import ConfigurationError


def _say(line: str) -> None:
    print(line, flush=True)


def data(args: argparse.Namespace) -> int:
    """Run the ``data`` subcommand ``args.subcommand``."""
    return {"fetch": fetch, "update": update, "list": listing}[args.subcommand](args)


def _store(folder: str | None) -> Any:
    from backtests.store import BarStore, store_root

    root = store_root(folder)
    if root.exists() and not root.is_dir():
        raise ConfigurationError(f"--store {root}: not a folder; fix: pass a folder (it is "
                                 "created on the first fetch)")
    return BarStore(root)


def _data_url(url: str | None) -> str | None:
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or " " in url:
        raise ConfigurationError(f"--data-url {url[:100]!r} is not an http(s) URL; fix: pass "
                                 "e.g. https://data.alpaca.markets or the URL sim-server prints")
    return url


def _symbols(names: list[str]) -> tuple[str, ...]:
    from backtests.store import check_symbol

    return tuple(dict.fromkeys(check_symbol(name) for name in names))


def fetch(args: argparse.Namespace) -> int:
    if args.start and args.end and args.start > args.end:
        raise ConfigurationError(f"--start {args.start} is after --end {args.end}; fix: swap "
                                 "them")
    symbols = _symbols(args.symbols)
    store, url = _store(args.store), _data_url(args.data_url)
    from live.datastore import FetchPlan, open_history
    from live.datastore import fetch as fetch_bars

    plan = FetchPlan(symbols, args.start, args.end, args.feed, args.adjustment)
    fetch_bars(store, open_history(url), plan, _say, progress=not args.no_progress)
    return 0


def update(args: argparse.Namespace) -> int:
    symbols = _symbols(args.symbols)
    store, url = _store(args.store), _data_url(args.data_url)
    from live.datastore import open_history
    from live.datastore import update as update_bars

    update_bars(store, open_history(url), symbols, _say, progress=not args.no_progress)
    return 0


def listing(args: argparse.Namespace) -> int:
    from live.datastore import listing as store_listing

    for line in store_listing(_store(args.store)):
        _say(line)
    return 0
