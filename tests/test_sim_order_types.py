"""Order types and time in force on daily bars: the pure rules, then the server end to end."""

from __future__ import annotations

import pandas as pd
import pytest

from live.sim.fills import (
    Bar,
    Outcome,
    evaluate,
    limit_fill,
    next_hwm,
    stop_fill,
    stop_limit_fill,
    trailing_stop_price,
)
from live.sim.orders import SimRejection
from live.sim.snapshot import restore_state, state_snapshot
from live.sim.state import SimState

BAR = Bar(open=100.0, high=110.0, low=90.0, close=105.0)


# ------------------------------------------------------------------ limit
def test_limit_buy_at_or_above_the_open_fills_at_the_open_with_slippage_capped_at_the_limit():
    assert limit_fill(BAR, "buy", 101.0, 0.0) == (100.0, "open")
    assert limit_fill(BAR, "buy", 100.5, 0.01) == (100.5, "open")  # 101 capped at 100.5


def test_limit_buy_below_the_open_fills_at_the_limit_when_the_low_reaches_it():
    assert limit_fill(BAR, "buy", 95.0, 0.01) == (95.0, "intraday")
    assert limit_fill(BAR, "buy", 90.0, 0.0) == (90.0, "intraday")


def test_limit_buy_below_the_low_does_not_fill():
    assert limit_fill(BAR, "buy", 89.99, 0.0) is None


def test_limit_sell_mirrors_the_buy():
    assert limit_fill(BAR, "sell", 99.0, 0.0) == (100.0, "open")
    assert limit_fill(BAR, "sell", 99.5, 0.01) == (99.5, "open")  # 99 capped at 99.5
    assert limit_fill(BAR, "sell", 108.0, 0.01) == (108.0, "intraday")
    assert limit_fill(BAR, "sell", 110.01, 0.0) is None


def test_day_limit_that_does_not_fill_expires_at_the_close_and_gtc_rests():
    day = evaluate(BAR, side="buy", order_type="limit", time_in_force="day", slippage=0.0,
                   limit_price=80.0)
    gtc = evaluate(BAR, side="buy", order_type="limit", time_in_force="gtc", slippage=0.0,
                   limit_price=80.0)

    assert day == Outcome("expire", "close")
    assert gtc == Outcome("rest", "close")


# ------------------------------------------------------------------- stops
def test_stop_gapped_through_at_the_open_fills_at_the_open_with_slippage():
    assert stop_fill(BAR, "buy", 95.0, 0.01) == pytest.approx((101.0, "open"))
    assert stop_fill(BAR, "sell", 104.0, 0.0) == (100.0, "open")


def test_stop_reached_during_the_session_fills_at_the_stop_with_slippage():
    assert stop_fill(BAR, "buy", 108.0, 0.01) == pytest.approx((109.08, "intraday"))
    assert stop_fill(BAR, "sell", 92.0, 0.0) == (92.0, "intraday")


def test_stop_not_reached_does_not_fill():
    assert stop_fill(BAR, "buy", 111.0, 0.0) is None
    assert stop_fill(BAR, "sell", 89.0, 0.0) is None


def test_stop_limit_triggered_at_the_open_works_as_a_limit_for_the_whole_bar():
    fill, triggered = stop_limit_fill(BAR, "buy", stop=95.0, limit=92.0, slippage=0.0,
                                      triggered=False)

    assert fill == (92.0, "intraday") and triggered


def test_stop_limit_triggered_in_the_session_fills_at_the_stop_when_within_the_limit():
    fill, triggered = stop_limit_fill(BAR, "buy", stop=108.0, limit=109.0, slippage=0.0,
                                      triggered=False)

    assert fill == (108.0, "intraday") and triggered


def test_stop_limit_triggered_in_the_session_beyond_its_limit_stays_triggered_unfilled():
    fill, triggered = stop_limit_fill(BAR, "buy", stop=108.0, limit=95.0, slippage=0.0,
                                      triggered=False)
    later = evaluate(Bar(96.0, 97.0, 94.0, 96.0), side="buy", order_type="stop_limit",
                     time_in_force="gtc", slippage=0.0, stop_price=108.0, limit_price=95.0,
                     triggered=triggered)

    assert fill is None and triggered
    assert later == Outcome("fill", "intraday", 95.0, triggered=True)


def test_stop_limit_not_triggered_rests_untriggered():
    assert stop_limit_fill(BAR, "sell", stop=85.0, limit=84.0, slippage=0.0,
                           triggered=False) == (None, False)


# ---------------------------------------------------------- trailing stop
def test_trailing_stop_sits_its_trail_from_the_water_mark():
    assert trailing_stop_price("sell", 100.0, 5.0, None) == 95.0
    assert trailing_stop_price("sell", 100.0, None, 10.0) == pytest.approx(90.0)
    assert trailing_stop_price("buy", 100.0, None, 10.0) == pytest.approx(110.0)


def test_water_mark_moves_close_to_close_only_in_the_traders_favour():
    assert next_hwm("sell", 100.0, 105.0) == 105.0
    assert next_hwm("sell", 100.0, 95.0) == 100.0
    assert next_hwm("buy", 100.0, 95.0) == 95.0


# ---------------------------------------------------------- time in force
@pytest.mark.parametrize("tif", ["opg", "ioc", "fok"])
def test_open_only_orders_fill_at_the_open(tif):
    market = evaluate(BAR, side="buy", order_type="market", time_in_force=tif, slippage=0.01)
    limit = evaluate(BAR, side="sell", order_type="limit", time_in_force=tif, slippage=0.0,
                     limit_price=99.0)

    assert market == Outcome("fill", "open", pytest.approx(101.0))
    assert limit == Outcome("fill", "open", 100.0)


@pytest.mark.parametrize("tif, action", [("opg", "expire"), ("ioc", "cancel"),
                                         ("fok", "cancel")])
def test_open_only_limit_not_marketable_at_the_open_is_expired_or_canceled(tif, action):
    outcome = evaluate(BAR, side="buy", order_type="limit", time_in_force=tif, slippage=0.0,
                       limit_price=95.0)  # the low reaches 95, but only the open counts

    assert outcome == Outcome(action, "open")


def test_cls_orders_fill_at_the_close_or_expire():
    market = evaluate(BAR, side="sell", order_type="market", time_in_force="cls",
                      slippage=0.01)
    limit = evaluate(BAR, side="buy", order_type="limit", time_in_force="cls", slippage=0.0,
                     limit_price=104.0)

    assert market == Outcome("fill", "close", pytest.approx(103.95))
    assert limit == Outcome("expire", "close")


# ----------------------------------------------------------------- state
def frame(rows: list[tuple[float, float, float, float]]) -> pd.DataFrame:
    """Daily bars from (open, high, low, close) rows on business days from 2021-01-04."""
    index = pd.bdate_range("2021-01-04", periods=len(rows))
    bars = pd.DataFrame(rows, index=index, columns=["open", "high", "low", "close"])
    return bars.assign(volume=1_000.0)


ROWS = [(100, 101, 99, 100), (100, 104, 96, 103), (103, 108, 102, 107), (107, 107, 95, 96),
        (96, 99, 94, 98)]


def replay(slippage: float = 0.0) -> SimState:
    return SimState({"SIM": frame(ROWS)}, slippage=slippage)


def test_a_resting_gtc_limit_fills_on_the_first_bar_whose_low_reaches_it():
    state = replay()
    order = state.submit("SIM", "buy", 10.0, None, "gtc", order_type="limit", limit_price=95.5)

    first = state.advance()
    state.advance()
    third = state.advance()

    assert first == [] and third == [order]
    assert order.status == "filled" and order.filled_avg_price == 95.5
    assert order.filled_at == pd.Timestamp("2021-01-07 12:00", tz="America/New_York")
    assert state.position("SIM").qty == 10.0 and state.cash == 100_000.0 - 955.0


def test_a_day_limit_that_misses_expires_at_that_sessions_close():
    state = replay()
    order = state.submit("SIM", "buy", 1.0, None, "day", order_type="limit", limit_price=90.0)

    touched = state.advance()

    assert touched == [order] and order.status == "expired" and not order.is_open
    assert order.expired_at == pd.Timestamp("2021-01-05 16:00", tz="America/New_York")
    assert [e["event"] for e in state.events] == ["new", "expired"]


def test_a_trailing_stop_follows_the_closes_and_sells_when_the_low_crosses_it():
    state = replay()
    state.submit("SIM", "buy", 5.0, None)
    state.advance()
    order = state.submit("SIM", "sell", 5.0, None, "gtc", order_type="trailing_stop",
                         trail_price=4.0)
    assert order.hwm == 103.0

    state.advance()  # low 102 > stop 99; close 107 lifts the mark
    assert order.is_open and order.hwm == 107.0
    state.advance()  # low 95 <= stop 103

    assert order.status == "filled" and order.filled_avg_price == 103.0


def test_market_orders_still_fill_at_the_next_open_with_slippage():
    state = replay(slippage=0.01)
    order = state.submit("SIM", "buy", 2.0, None)

    state.advance()

    assert order.filled_avg_price == pytest.approx(101.0)
    assert order.filled_at == pd.Timestamp("2021-01-05 09:30", tz="America/New_York")


def test_replace_links_the_orders_and_the_new_one_works_instead():
    state = replay()
    old = state.submit("SIM", "buy", 3.0, None, "gtc", order_type="limit", limit_price=50.0)

    new = state.replace(old.id, qty=4.0, limit_price=97.0)
    state.advance()

    assert old.status == "replaced" and old.replaced_by == new.id and new.replaces == old.id
    assert new.status == "filled" and new.filled_qty == 4.0 and new.filled_avg_price == 97.0
    assert [e["event"] for e in state.events] == ["new", "replaced", "new", "fill"]


@pytest.mark.parametrize("fields, needle", [
    ({"order_type": "limit"}, "limit_price"),
    ({"order_type": "stop"}, "stop_price"),
    ({"order_type": "trailing_stop"}, "trail_price"),
    ({"time_in_force": "gtc", "qty": 1.5}, "fractional"),
    ({"extended_hours": True}, "extended_hours"),
    ({"order_type": "stop", "stop_price": 1.0, "time_in_force": "opg"}, "time_in_force"),
    ({"limit_price": 5.0}, "limit_price"),
])
def test_orders_alpaca_refuses_are_422_and_leave_no_trace(fields, needle):
    state = replay()
    terms = {"qty": 1.0, "time_in_force": "day", **fields}

    with pytest.raises(SimRejection) as refused:
        state.submit("SIM", "buy", terms.pop("qty"), None, terms.pop("time_in_force"), **terms)

    assert refused.value.status == 422 and needle in refused.value.message
    assert state.orders == [] and state.events == []


def test_an_unknown_symbol_on_an_order_is_422():
    with pytest.raises(SimRejection) as refused:
        replay().submit("NOPE", "buy", 1.0, None)

    assert refused.value.status == 422


def test_a_resumed_replay_keeps_resting_orders_and_continues_identically(tmp_path):
    def drive(state: SimState) -> None:
        state.submit("SIM", "buy", 5.0, None)
        state.advance()
        state.submit("SIM", "sell", 5.0, None, "gtc", order_type="trailing_stop",
                     trail_percent=3.0)
        state.submit("SIM", "buy", 1.0, None, "gtc", order_type="stop_limit",
                     stop_price=105.0, limit_price=100.0)
        state.advance()

    straight, resumed = replay(), replay()
    drive(straight)
    drive(resumed)
    saved = state_snapshot(resumed, None)
    fresh = replay()
    restore_state(fresh, saved, None, tmp_path / "sim_state.json")

    straight.advance()
    straight.advance()
    fresh.advance()
    fresh.advance()

    assert state_snapshot(fresh, None) == state_snapshot(straight, None)
    assert any(o.order_type == "stop_limit" and o.triggered for o in fresh.orders)
