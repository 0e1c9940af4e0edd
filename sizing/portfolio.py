"""One account over several symbols: top-k selection, slice weights and the gross cap.

Every function is a pure function of explicit inputs, one entry per symbol in a fixed order
(the order the symbols were listed).  :class:`strategies.strategy.EnsembleStrategy` calls
:func:`target_weights` once per close; ``docs/sizing.md`` ("Portfolios") states the rules.

Weights here are *slice* weights: a symbol trades ``slice * equity``, where its slice is its
allocation (``mode: allocations``) or ``1/k`` (``mode: topk``), so its weight in the account
is ``slice * weight``.  One symbol with the default configuration has slice 1 and every rule
below leaves its hybrid weight exactly as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sizing.breaker import BreakerParams, BreakerState, cap_weight
from sizing.config import PortfolioConfig
from sizing.rebalance import trim_tolerance


def _ranked(indices: Sequence[int], key: np.ndarray) -> list[int]:
    """``indices`` by descending ``key``; ties keep the listing order."""
    return sorted(indices, key=lambda i: (-key[i], i))


def topk_dropout(scores: np.ndarray, held: np.ndarray, tradable: np.ndarray, k: int,
                 dropout: int | None = None) -> np.ndarray:
    """The symbols to hold after today's trades, picked as Qlib's ``TopkDropoutStrategy`` does.

    Parameters
    ----------
    scores : numpy.ndarray
        Today's prediction per symbol; NaN where there is none.
    held : numpy.ndarray of bool
        Symbols held now.
    tradable : numpy.ndarray of bool
        Symbols with a bar today.  Only these are ranked, bought or sold.
    k : int
        Symbols to hold.
    dropout : int | None
        Most held symbols replaced today (Qlib's ``n_drop``); None means ``k``, which is
        plain top-k.

    Returns
    -------
    numpy.ndarray of bool
        The symbols held after today's trades: at most ``k``.

    Notes
    -----
    A held symbol without a bar stays held and takes one of the ``k`` places; a held symbol
    with a bar but no finite score is sold (it cannot be ranked).  Of the other held symbols,
    ``last``, ranked by score, and the best ``dropout + k' - len(last)`` unheld candidates,
    ``today`` (``k'`` is ``k`` less the symbols without a bar): ``comb`` ranks both together;
    the held symbols among its bottom ``dropout`` are sold, except those within its top
    ``k'``; the best ``len(sold) + k' - len(last)`` of ``today`` are bought.  With enough
    candidates ``comb`` holds ``k' + dropout`` symbols and this is Qlib's rule; the top-``k'``
    exception only matters in a universe too small to fill ``comb``, where Qlib would sell a
    symbol that still ranks among the best.
    """
    scores = np.asarray(scores, dtype=np.float64)
    held = np.asarray(held, dtype=bool)
    tradable = np.asarray(tradable, dtype=bool)
    drop = k if dropout is None else dropout
    rankable = tradable & np.isfinite(scores)
    fixed = held & ~tradable
    places = max(k - int(fixed.sum()), 0)
    key = np.where(rankable, scores, -np.inf)
    last = _ranked(np.flatnonzero(held & rankable).tolist(), key)
    wanted = max(drop + places - len(last), 0)
    today = _ranked(np.flatnonzero(rankable & ~held).tolist(), key)[:wanted]
    comb = _ranked(last + today, key)
    bottom = set(comb[max(len(comb) - drop, places):])
    sold = [i for i in last if i in bottom]
    bought = today[:max(len(sold) + places - len(last), 0)]
    selected = fixed.copy()
    selected[[i for i in last if i not in bottom] + bought] = True
    return selected


def topk_weights(selected: np.ndarray, kelly: np.ndarray, weights: str) -> np.ndarray:
    """Slice weights of a top-k book: 0 for a symbol not selected.

    ``equal`` holds each selected symbol's slice whole (weight 1); ``kelly`` holds it at the
    symbol's hybrid weight floored at 0 (long only), so a bearish pick holds little or
    nothing.
    """
    selected = np.asarray(selected, dtype=bool)
    if weights == "equal":
        return selected.astype(np.float64)
    kelly = np.nan_to_num(np.asarray(kelly, dtype=np.float64), nan=0.0)
    return np.where(selected, np.maximum(kelly, 0.0), 0.0)


def gross_cap(max_gross: float | None, state: BreakerState, params: BreakerParams,
              ) -> float | None:
    """The cap on the account's gross weight now: ``max_gross``, and ``drawdown_max_position``
    while the breaker is tripped (the smaller of the two); None for no cap."""
    caps = [c for c in (max_gross, params.max_position if state.tripped else None)
            if c is not None]
    return min(caps) if caps else None


def gross_scale(weights: np.ndarray, slices: np.ndarray, fixed: float,
                cap: float | None) -> float:
    """The factor in ``[0, 1]`` that fits the traded weights under the gross cap.

    Parameters
    ----------
    weights, slices : numpy.ndarray
        Slice weights and slices of the symbols traded today.
    fixed : float
        Gross account weight of the symbols that cannot trade today (no bar): it stays.
    cap : float | None
        Gross cap (:func:`gross_cap`); None scales nothing.

    Returns
    -------
    float
        1 when ``sum(|weights| * slices) + fixed <= cap``; else the factor that makes the
        traded gross ``max(cap - fixed, 0)``.
    """
    gross = float(np.sum(np.abs(weights) * slices))
    if cap is None or gross + fixed <= cap or gross <= 0.0:
        return 1.0
    return max(cap - fixed, 0.0) / gross


def over_gross(held_gross: float, cap: float | None, band: float) -> bool:
    """Whether the held gross weight is over ``cap`` by more than the trim tolerance.

    Then every symbol with a bar whose target is smaller than what it holds trades, whatever
    the rebalance band (:func:`sizing.rebalance.trim_tolerance` of the cap).
    """
    return cap is not None and held_gross > cap + trim_tolerance(band, cap)


@dataclass(frozen=True)
class Book:
    """One close's inputs, one entry per symbol in listing order.

    Attributes
    ----------
    kelly : numpy.ndarray
        The hybrid weight (``sizing.kelly.target_weight``) of each symbol with a bar; any
        value elsewhere (it is not read).
    scores : numpy.ndarray
        Today's prediction; NaN where there is none or no bar.
    held : numpy.ndarray
        Held slice weight (position value over ``slice * equity``).
    slices : numpy.ndarray
        Each symbol's share of the account.
    live : numpy.ndarray of bool
        Whether the symbol has a bar at this close (only those trade).
    """

    kelly: np.ndarray
    scores: np.ndarray
    held: np.ndarray
    slices: np.ndarray
    live: np.ndarray

    @property
    def fixed_gross(self) -> float:
        """Gross account weight of the symbols without a bar."""
        idle = ~self.live
        if not idle.any():  # every symbol has a bar (the sum would be of nothing)
            return 0.0
        return float(np.sum(np.abs(self.held[idle]) * self.slices[idle]))

    @property
    def held_gross(self) -> float:
        """Gross account weight held now."""
        return float(np.sum(np.abs(self.held) * self.slices))

    def over_gross(self, cap: float | None, band: float) -> bool:
        """:func:`over_gross` of what is held now; the gross is not summed without a cap."""
        return cap is not None and over_gross(self.held_gross, cap, band)


def target_weights(book: Book, cfg: PortfolioConfig, state: BreakerState,
                   params: BreakerParams) -> np.ndarray:
    """Each symbol's target slice weight at this close.

    1. The raw weight: the hybrid weight (``allocations``), or the top-k book
       (:func:`topk_dropout`, :func:`topk_weights`).
    2. The breaker, per symbol on its slice (:func:`sizing.breaker.cap_weight`).
    3. The gross cap (:func:`gross_cap`): the symbols with a bar are scaled by one factor
       (:func:`gross_scale`), the others keep what they hold.

    Returns
    -------
    numpy.ndarray
        Target slice weights; a symbol without a bar gets its held weight.
    """
    raw = book.kelly
    if cfg.mode == "topk":
        assert cfg.k is not None  # PortfolioConfig requires it
        selected = topk_dropout(book.scores, book.held > 0.0, book.live, cfg.k, cfg.dropout)
        raw = topk_weights(selected, book.kelly, cfg.weights)
    out = np.array(book.held, dtype=np.float64)
    for i in book.live.nonzero()[0]:
        out[i] = cap_weight(float(raw[i]), float(book.held[i]), state, params)
    cap = gross_cap(cfg.max_gross, state, params)
    if cap is None:  # no gross cap (the default, breaker untripped): nothing to scale
        return out
    live = book.live
    factor = gross_scale(out[live], book.slices[live], book.fixed_gross, cap)
    if factor < 1.0:
        out[live] *= factor
    return out
