"""``AlpacaStore``: one account's connections, shared by every feed and the broker.

It follows backtrader's live-store pattern (``stores/ibstore.py``): the store owns the
connections, feeds and the broker are created from it (:meth:`AlpacaStore.getdata`,
:meth:`AlpacaStore.getbroker`) and cerebro starts and stops it.

- One market-data websocket (alpaca-py ``StockDataStream``) for all symbols, one trading
  stream (``TradingStream``), one ``TradingClient`` and one ``StockHistoricalDataClient``.
- Streams run on their own threads; their callbacks only put messages on thread-safe queues,
  which the feeds and the broker drain on cerebro's thread.
- A (re)connection of the market-data stream flags every feed to backfill over REST.
  alpaca-py reconnects with jittered exponential backoff (``alpaca.common.utils``).
- Against the local replay server the store also drives the replay: once every feed has
  delivered the current bar it posts ``/sim/advance`` (the replay-only acknowledgement), then
  waits until the broker has seen the fills of that step on the trading stream.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pandas as pd
import requests
from alpaca.data.enums import DataFeed
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.live import StockDataStream
from alpaca.data.requests import StockBarsRequest
from alpaca.data.timeframe import TimeFrame
from alpaca.trading.client import TradingClient
from alpaca.trading.stream import TradingStream
from loguru import logger

from ensemble_bt.errors import BrokerError
from live.alpaca.clock import NEW_YORK, DecisionClock, bar_day
from live.alpaca.endpoints import AlpacaEndpoints

RETRY_CODES = [429, 500, 502, 503, 504]


class _ObservedDataStream(StockDataStream):
    """``StockDataStream`` that reports each subscription acknowledgement.

    The server acknowledges the subscription after every (re)connection: from then on bars
    arrive on the socket, and anything published before it must be backfilled over REST.
    """

    def __init__(self, *args: Any, on_subscribed: Callable[[], None],
                 on_closed: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_subscribed, self._on_closed = on_subscribed, on_closed

    async def _dispatch(self, msg: dict) -> None:  # alpaca-py's per-message hook
        await super()._dispatch(msg)
        if msg.get("T") == "subscription":
            self._on_subscribed()

    async def close(self) -> None:  # alpaca-py calls it on every disconnect
        self._on_closed()
        await super().close()


class _ObservedTradingStream(TradingStream):
    """``TradingStream`` that reports when the server starts listening to trade updates."""

    def __init__(self, *args: Any, on_listening: Callable[[], None],
                 on_closed: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_listening, self._on_closed = on_listening, on_closed

    async def _dispatch(self, msg: dict) -> None:
        await super()._dispatch(msg)
        if msg.get("stream") == "listening":
            self._on_listening()

    async def close(self) -> None:
        self._on_closed()
        await super().close()


def _tune_retries(client: Any, endpoints: AlpacaEndpoints) -> None:
    # alpaca-py's RESTClient keeps its retry policy in attributes without a public setter.
    client._retry = max(endpoints.rest_retries, 1)
    client._retry_wait = endpoints.rest_retry_wait
    client._retry_codes = RETRY_CODES


class AlpacaStore:
    """Connections of one Alpaca account.

    Parameters
    ----------
    key_id, secret : str
        Credentials (from the environment; never logged).
    endpoints : AlpacaEndpoints
        URLs and stream settings; ``None`` URLs are Alpaca's paper endpoints.
    replay : bool
        The endpoints are the local replay server: drive it with ``/sim/advance``.
    max_advances : int or None
        Stop the replay after this many new bars (None: at the end of the data).
    decision_delay_minutes : int
        Real sessions: minutes after each close at which every feed expects its daily bar
        (:mod:`live.alpaca.clock`).
    """

    def __init__(self, key_id: str, secret: str, endpoints: AlpacaEndpoints,
                 replay: bool = False, max_advances: int | None = None,
                 decision_delay_minutes: int = 10) -> None:
        self.endpoints = endpoints
        self.replay = replay
        self.max_advances = max_advances
        self.decision_delay = decision_delay_minutes
        self._clock: Any = None
        self.advances = 0
        self._key_id, self._secret = key_id, secret
        # The resolved URLs, passed explicitly: the clients connect exactly where the
        # real-money rule (``live.alpaca.endpoints.live_endpoint``) looked, and where the
        # startup log says.
        rest, stream = endpoints.trading_endpoints()
        self.trading_url, self.trading_stream_url = rest.url, stream.url
        self.trading = TradingClient(key_id, secret, paper=endpoints.paper,
                                     url_override=self.trading_url)
        self.history = StockHistoricalDataClient(key_id, secret, url_override=endpoints.data_url)
        _tune_retries(self.trading, endpoints)
        _tune_retries(self.history, endpoints)
        self.feeds: dict[str, Any] = {}
        self.broker: Any = None
        self.connects = 0  # market-data subscriptions acknowledged (1 + reconnects)
        self.listening = 0  # trading-stream listen acknowledgements
        self.data_state = self.trading_state = "connecting"
        self.finished = False  # the replay has no bar after the current one
        self._threads: list[threading.Thread] = []
        self._streams: list[Any] = []
        self._notifs: list[str] = []
        self._started = False
        self._lock = threading.Lock()

    # ------------------------------------------------------------- backtrader API
    def getdata(self, symbol: str, **kwargs: Any) -> Any:
        """A feed for ``symbol`` that shares this store's connections."""
        from live.alpaca.feed import AlpacaData

        data = AlpacaData(symbol=symbol, store=self, name=symbol, **kwargs)
        self.feeds[symbol] = data
        return data

    def getbroker(self, **kwargs: Any) -> Any:
        """The account's broker (one per store)."""
        from live.alpaca.broker import AlpacaBroker

        if self.broker is None:
            self.broker = AlpacaBroker(store=self, **kwargs)
        return self.broker

    def put_notification(self, message: str) -> None:
        self._notifs.append(message)

    def get_notifications(self) -> list[str]:
        notifs, self._notifs = self._notifs, []
        return notifs

    # ---------------------------------------------------------------- lifecycle
    def start(self, data: Any = None, broker: Any = None) -> None:
        """Open both streams once, whoever asks first (each feed and the broker call it)."""
        with self._lock:
            if self._started:
                return
            self._started = True
        ep = self.endpoints
        stream = _ObservedDataStream(self._key_id, self._secret, feed=DataFeed(ep.feed),
                                     url_override=ep.data_stream_url,
                                     on_subscribed=self._on_data_subscribed,
                                     on_closed=lambda: self._set_state("data", "disconnected"))
        subscribe = (stream.subscribe_daily_bars if ep.stream_bars == "dailyBars"
                     else stream.subscribe_bars)
        subscribe(self._on_bar, *self.feeds)
        trades = _ObservedTradingStream(self._key_id, self._secret, paper=ep.paper,
                                        url_override=self.trading_stream_url,
                                        on_listening=self._on_listening,
                                        on_closed=lambda: self._set_state("trading",
                                                                          "disconnected"))
        trades.subscribe_trade_updates(self._on_trade_update)
        self._streams = [trades, stream]
        for name, target in (("alpaca-trades", trades.run), ("alpaca-data", stream.run)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        if not self.replay:
            self._clock = DecisionClock(self, self.decision_delay)
            self._clock.start()
        logger.info("alpaca store: one data stream for {}, one trading stream",
                    ", ".join(self.feeds))

    def stop(self) -> None:
        """Close both streams and join their threads."""
        if self._clock is not None:
            self._clock.stop()
        for stream in self._streams:
            try:
                stream.stop()
            except Exception as exc:  # a stream that never connected has no loop to stop
                logger.debug("stopping {}: {}", type(stream).__name__, exc)
        for thread in self._threads:
            thread.join(timeout=5.0)
        self._streams, self._threads = [], []

    # ----------------------------------------------------------- stream callbacks
    def _set_state(self, stream: str, state: str) -> None:
        setattr(self, f"{stream}_state", state)

    def _on_listening(self) -> None:
        self.trading_state = "connected"
        self.listening += 1
        if self.listening > 1:
            logger.warning("trading stream reconnected; open orders are checked over REST")
            if self.broker is not None:
                self.broker.request_reconcile()

    def _on_data_subscribed(self) -> None:
        self.data_state = "connected"
        self.connects += 1
        if self.connects > 1:
            logger.warning("market-data stream reconnected ({}); feeds will backfill",
                           self.connects - 1)
            self.put_notification("data stream reconnected")
        for feed in self.feeds.values():
            feed.request_backfill()

    async def _on_bar(self, bar: Any) -> None:
        feed = self.feeds.get(bar.symbol)
        if feed is not None:
            feed.push(bar_day(bar.timestamp), bar, time.perf_counter())

    async def _on_trade_update(self, update: Any) -> None:
        if self.broker is not None:
            self.broker.push_update(update)

    # --------------------------------------------------------------------- REST
    def wait_connected(self, timeout: float = 20.0) -> None:
        """Block until both streams are subscribed (a replay must not advance before)."""
        deadline = time.monotonic() + timeout
        while self.connects == 0 or self.listening == 0:
            if time.monotonic() > deadline:
                where = self.endpoints.data_stream_url or "Alpaca's stream endpoints"
                raise BrokerError(f"the Alpaca streams did not connect in {timeout:.0f} s "
                                  f"({where}); check the keys and the URLs")
            time.sleep(0.005)

    def fetch_bars(self, symbol: str, start: pd.Timestamp, end: pd.Timestamp | None = None,
                   ) -> list[tuple[pd.Timestamp, Any]]:
        """Daily bars of ``symbol`` from ``start`` (date) on, through alpaca-py's paging."""
        request = StockBarsRequest(symbol_or_symbols=symbol, timeframe=TimeFrame.Day,
                                   start=pd.Timestamp(start).tz_localize(NEW_YORK).to_pydatetime(),
                                   end=None if end is None else end.to_pydatetime(),
                                   feed=DataFeed(self.endpoints.feed))
        bars = self.history.get_stock_bars(request).data.get(symbol, [])
        return [(bar_day(bar.timestamp), bar) for bar in bars]

    def clock_day(self) -> pd.Timestamp:
        """Today's session date in New York, by the account's clock."""
        return bar_day(self.trading.get_clock().timestamp)

    # ------------------------------------------------------------------ replay
    def advance(self) -> dict:
        """Ask the replay server for the next bar; wait for its fills on the trading stream.

        Returns the server's step, or an empty dict when the replay is over.
        """
        if self.max_advances is not None and self.advances >= self.max_advances:
            self.finished = True
            return {}
        if self.advances == 0:
            self.wait_connected()
        self.advances += 1
        url = f"{self.trading_url}/sim/advance"
        response = requests.post(url, timeout=30, headers={
            "APCA-API-KEY-ID": self._key_id, "APCA-API-SECRET-KEY": self._secret})
        if response.status_code == 409:
            self.finished = True
            return {}
        if response.status_code != 200:
            raise BrokerError(f"replay server refused /sim/advance: HTTP {response.status_code}")
        step = response.json()
        self.finished = bool(step["finished"])
        if self.broker is not None:
            self.broker.await_orders(step["orders"], timeout=self.endpoints.fill_timeout)
        day = bar_day(pd.Timestamp(step["bar_time"]))
        for feed in self.feeds.values():
            feed.expect(day)
        return step

    def all_ready(self, day: pd.Timestamp) -> bool:
        """Whether every feed holds the bar of ``day``: no feed moves ahead alone."""
        return all(feed.has_bar(day) for feed in self.feeds.values())

    def all_delivered(self) -> bool:
        """Whether every feed has delivered everything it holds."""
        return all(feed.drained() for feed in self.feeds.values())
