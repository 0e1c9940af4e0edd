"""Scenarios for backtests.datasets: embedded data, user files and the validation rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtests.datasets import (
    COLUMNS,
    EMBEDDED,
    data_hash,
    list_datasets,
    load_dataset,
    validate_ohlcv,
)
from ensemble_bt.errors import DataError

HEADER = "Date,Open,High,Low,Close,Volume"
GOOD_ROWS = [
    "2020-01-02,10,11,9,10.5,1000",
    "2020-01-03,10.5,12,10,11.5,1500",
    "2020-01-06,11.5,11.8,11,11.2,900",
]
EXPECTED_RANGES = {
    "AAPL": ("2000-03-01", "2013-03-01", 3270),
    "IBM": ("2000-03-01", "2013-03-01", 3270),
    "MSFT": ("2000-03-01", "2013-03-01", 3270),
    "GOOG": ("2004-08-19", "2013-03-01", 2148),
    "SP500": ("1999-01-04", "2018-12-31", 5031),
    "NASDAQ": ("1999-01-04", "2018-12-31", 5031),
}


def write_csv(tmp_path: Path, rows: list[str], header: str = HEADER, name: str = "px.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


# --- embedded datasets -----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EMBEDDED))
def test_embedded_dataset_loads_validated_with_expected_range(name: str) -> None:
    start, end, bars = EXPECTED_RANGES[name]

    frame = load_dataset(name)

    validate_ohlcv(frame, name)
    assert list(frame.columns) == list(COLUMNS)
    assert all(dtype == np.float64 for dtype in frame.dtypes)
    assert isinstance(frame.index, pd.DatetimeIndex) and frame.index.name == "date"
    assert frame.index.tz is None and (frame.index == frame.index.normalize()).all()
    assert frame.index[0] == pd.Timestamp(start) and frame.index[-1] == pd.Timestamp(end)
    assert len(frame) == bars
    assert frame.attrs["symbol"] == name and frame.attrs["source"].endswith(f":{name}")


@pytest.mark.parametrize("name", sorted(EMBEDDED))
def test_embedded_unadjusted_dataset_also_validates(name: str) -> None:
    frame = load_dataset(name, adjust=False)

    validate_ohlcv(frame, name)


def test_embedded_name_is_case_insensitive() -> None:
    frame = load_dataset(" aapl ")

    assert frame.attrs["symbol"] == "AAPL"
    assert frame.equals(load_dataset("AAPL"))


def test_aapl_split_adjustment_removes_the_2005_two_for_one_drop() -> None:
    raw = load_dataset("AAPL", adjust=False)

    adjusted = load_dataset("AAPL")

    split_day = pd.Timestamp("2005-02-28")
    assert raw["close"].pct_change()[split_day] < -0.45  # the raw series shows the split
    assert abs(adjusted["close"].pct_change()[split_day]) < 0.05
    raw_value = (raw["close"] * raw["volume"])[split_day]
    adjusted_value = (adjusted["close"] * adjusted["volume"])[split_day]
    assert adjusted_value == pytest.approx(raw_value, rel=1e-9)  # volume scaled inversely


def test_embedded_frames_are_copies_so_callers_cannot_corrupt_the_cache() -> None:
    first = load_dataset("IBM")
    first.iloc[0, 0] = -1.0
    first.attrs["symbol"] = "MUTATED"

    second = load_dataset("IBM")

    assert second.iloc[0, 0] > 0 and second.attrs["symbol"] == "IBM"


def test_list_datasets_covers_all_six_with_ranges() -> None:
    rows = list_datasets()

    assert [row["name"] for row in rows] == list(EMBEDDED)
    for row in rows:
        start, end, bars = EXPECTED_RANGES[row["name"]]
        assert (row["start"], row["end"], row["bars"]) == (start, end, bars)
        assert row["source"]


def test_data_hash_is_stable_and_sensitive_to_values() -> None:
    frame = load_dataset("MSFT")
    changed = frame.copy()
    changed.iloc[-1, 3] += 0.01

    assert data_hash(frame) == data_hash(load_dataset("MSFT"))
    assert data_hash(frame) != data_hash(changed)
    assert len(data_hash(frame)) == 64


# --- spec resolution -------------------------------------------------------------------------


def test_unknown_dataset_raises_data_error_listing_embedded_names() -> None:
    with pytest.raises(DataError) as err:
        load_dataset("TSLA")

    message = str(err.value)
    assert "TSLA" in message and "store:SYMBOL" in message and ".csv" in message
    assert all(name in message for name in EMBEDDED)


def test_missing_csv_file_raises_data_error_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"

    with pytest.raises(DataError, match="file not found.*nope.csv"):
        load_dataset(str(missing))


def test_alpaca_spec_raises_data_error_pointing_at_the_local_store() -> None:
    with pytest.raises(DataError, match="read from the local store"):
        load_dataset("alpaca:AAPL")


# --- user files ------------------------------------------------------------------------------


def test_csv_loads_with_symbol_from_stem_and_path_as_source(tmp_path: Path) -> None:
    path = write_csv(tmp_path, GOOD_ROWS, name="spy.csv")

    frame = load_dataset(str(path))

    assert list(frame.columns) == list(COLUMNS) and len(frame) == 3
    assert frame.attrs == {"symbol": "SPY", "source": str(path)}
    assert frame.index[0] == pd.Timestamp("2020-01-02") and frame.index.name == "date"
    assert frame["volume"].dtype == np.float64


@pytest.mark.parametrize(
    "header",
    [
        "date,open,high,low,close,volume",
        "timestamp,o,h,l,c,v",
        "TIME,OPEN,HIGH,LOW,CLOSE,VOL",
        "Datetime,Open,High,Low,Close,Volume",
    ],
)
def test_csv_with_common_column_spellings_loads(tmp_path: Path, header: str) -> None:
    path = write_csv(tmp_path, GOOD_ROWS, header=header)

    frame = load_dataset(str(path))

    assert frame["close"].tolist() == [10.5, 11.5, 11.2]
    assert frame["volume"].tolist() == [1000.0, 1500.0, 900.0]


@pytest.mark.parametrize("adj_name", ["Adj Close", "adj_close", "adjclose", "Adj_Close"])
def test_csv_with_adjusted_close_is_adjusted_by_default(tmp_path: Path, adj_name: str) -> None:
    rows = ["2020-01-02,10,11,9,10,1000,5", "2020-01-03,10,12,10,11,1000,5.5"]
    path = write_csv(tmp_path, rows, header=f"{HEADER},{adj_name}")

    adjusted = load_dataset(str(path))
    raw = load_dataset(str(path), adjust=False)

    assert adjusted["close"].tolist() == [5.0, 5.5]
    assert adjusted.loc["2020-01-02", ["open", "high", "low"]].tolist() == [5.0, 5.5, 4.5]
    assert adjusted["volume"].tolist() == [2000.0, 2000.0]
    assert raw["close"].tolist() == [10.0, 11.0] and raw["volume"].tolist() == [1000.0, 1000.0]


def test_csv_with_tz_aware_timestamps_is_converted_to_utc_naive_dates(tmp_path: Path) -> None:
    rows = [
        "2020-01-02T00:00:00-05:00,10,11,9,10.5,1000",
        "2020-01-03T00:00:00-05:00,10.5,12,10,11.5,1500",
    ]
    path = write_csv(tmp_path, rows, header="timestamp,open,high,low,close,volume")

    frame = load_dataset(str(path))

    assert frame.index.tz is None
    assert list(frame.index) == [pd.Timestamp("2020-01-02"), pd.Timestamp("2020-01-03")]


def test_parquet_round_trip_with_datetime_index(tmp_path: Path) -> None:
    original = load_dataset("GOOG").iloc[:50]
    path = tmp_path / "goog.parquet"
    original.to_parquet(path)

    frame = load_dataset(str(path))

    pd.testing.assert_frame_equal(frame, original, check_freq=False)
    assert frame.attrs == {"symbol": "GOOG", "source": str(path)}
    assert data_hash(frame) == data_hash(original)


def test_parquet_with_tz_aware_date_column_loads_as_naive(tmp_path: Path) -> None:
    dates = pd.date_range("2021-03-01 14:30", periods=3, freq="D", tz="America/New_York")
    table = pd.DataFrame({
        "Timestamp": dates, "Open": [1.0, 2, 3], "High": [1.5, 2.5, 3.5],
        "Low": [0.5, 1.5, 2.5], "Close": [1.2, 2.2, 3.2], "Volume": [10, 20, 30],
    })
    path = tmp_path / "tz.parquet"
    table.to_parquet(path)

    frame = load_dataset(str(path))

    assert frame.index.tz is None
    assert list(frame.index) == list(pd.date_range("2021-03-01", periods=3, freq="D"))


def test_csv_without_volume_column_raises_data_error_naming_the_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path, ["2020-01-02,10,11,9,10.5"], header="Date,Open,High,Low,Close")

    with pytest.raises(DataError, match=r"px\.csv.*missing required column 'volume'"):
        load_dataset(str(path))


def test_empty_csv_file_raises_data_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    header_only = write_csv(tmp_path, [], name="header.csv")

    with pytest.raises(DataError, match=r"empty\.csv.*empty file"):
        load_dataset(str(empty))
    with pytest.raises(DataError, match=r"header\.csv.*empty file"):
        load_dataset(str(header_only))


# --- validation rules: one scenario each, the bad bar is always data row 2 (2020-01-03) ------

BAD_ROW_CASES = {
    "nan": ("2020-01-03,10.5,,10,11.5,1500", "missing or non-numeric high"),
    "non_numeric": ("2020-01-03,10.5,abc,10,11.5,1500", "missing or non-numeric high"),
    "bad_date": ("not-a-date,10.5,12,10,11.5,1500", "unparseable date"),
    "zero_close": ("2020-01-03,10.5,12,10,0,1500", "non-positive close"),
    "negative_open": ("2020-01-03,-1,12,10,11.5,1500", "non-positive open"),
    "negative_volume": ("2020-01-03,10.5,12,10,11.5,-5", "negative volume"),
    "high_below_low": ("2020-01-03,10.5,9,12,10.5,1500", "high < low"),
    "inf_close": ("2020-01-03,10.5,12,10,inf,1500", "infinite close"),
    "minus_inf_low": ("2020-01-03,10.5,12,-inf,11.5,1500", "infinite low"),
    "inf_volume": ("2020-01-03,10.5,12,10,11.5,inf", "infinite volume"),
    "absurd_price": ("2020-01-03,10.5,1e308,10,11.5,1500", "absurd high"),
    "absurd_all": ("2020-01-03,2e9,3e9,1e9,2e9,1500", "absurd open"),
    "high_below_close": ("2020-01-03,10.5,11,10,11.5,1500", "high < max(open, close)"),
    "low_above_open": ("2020-01-03,10.5,12,10.8,11.5,1500", "low > min(open, close)"),
}


@pytest.mark.parametrize("case", sorted(BAD_ROW_CASES))
def test_csv_with_bad_bar_raises_data_error_naming_file_row_and_rule(
    tmp_path: Path, case: str
) -> None:
    bad_row, rule = BAD_ROW_CASES[case]
    path = write_csv(tmp_path, [GOOD_ROWS[0], bad_row, GOOD_ROWS[2]], name="prices.csv")

    with pytest.raises(DataError) as err:
        load_dataset(str(path))

    message = str(err.value)
    assert "prices.csv" in message and "data row 2" in message and rule in message
    assert "fix:" in message and "\n" not in message
    if case != "bad_date":
        assert "2020-01-03" in message


def test_csv_with_duplicate_dates_raises_data_error_naming_row(tmp_path: Path) -> None:
    rows = [GOOD_ROWS[0], GOOD_ROWS[1], GOOD_ROWS[1].replace("11.5,1500", "11.4,1400")]
    path = write_csv(tmp_path, rows, name="dups.csv")

    with pytest.raises(DataError) as err:
        load_dataset(str(path))

    message = str(err.value)
    assert "dups.csv" in message and "data row 3 (2020-01-03)" in message
    assert "duplicate date" in message


def test_csv_with_unsorted_dates_raises_data_error_naming_row(tmp_path: Path) -> None:
    path = write_csv(tmp_path, [GOOD_ROWS[1], GOOD_ROWS[0], GOOD_ROWS[2]], name="unsorted.csv")

    with pytest.raises(DataError) as err:
        load_dataset(str(path))

    message = str(err.value)
    assert "unsorted.csv" in message and "data row 2 (2020-01-02)" in message
    assert "not sorted ascending" in message


def test_bar_off_by_float_rounding_is_accepted(tmp_path: Path) -> None:
    # high sits 1e-15 (relative) below open and close
    path = write_csv(tmp_path, ["2020-01-02,10,9.99999999999999,9,10,1000"])

    frame = load_dataset(str(path))

    assert len(frame) == 1


def test_user_file_with_inconsistent_bar_is_not_repaired(tmp_path: Path) -> None:
    path = write_csv(tmp_path, ["2020-01-02,10,10.5,9,11,1000"], name="user.csv")

    with pytest.raises(DataError, match=r"user\.csv: data row 1 \(2020-01-02\): high < max"):
        load_dataset(str(path))


def test_validate_ohlcv_on_empty_frame_raises_data_error() -> None:
    frame = pd.DataFrame(columns=list(COLUMNS), index=pd.DatetimeIndex([], name="date"))

    with pytest.raises(DataError, match="mem: empty file"):
        validate_ohlcv(frame, "mem")


def test_validate_ohlcv_on_frame_missing_column_raises_data_error() -> None:
    frame = load_dataset("AAPL").drop(columns="low")

    with pytest.raises(DataError, match="missing required column 'low'"):
        validate_ohlcv(frame, "aapl-frame")


def test_csv_with_nan_adjusted_close_raises_data_error_naming_row(tmp_path: Path) -> None:
    rows = ["2020-01-02,10,11,9,10,1000,5", "2020-01-03,10,12,10,11,1000,"]
    path = write_csv(tmp_path, rows, header=f"{HEADER},Adj Close", name="adj.csv")

    with pytest.raises(DataError, match=r"adj\.csv: data row 2 \(2020-01-03\).*adj_close"):
        load_dataset(str(path))


def test_embedded_repair_widens_high_and_low_to_bracket_open_and_close() -> None:
    from backtests.datasets import _repair_ohlc

    index = pd.DatetimeIndex(["2020-01-02", "2020-01-03"], name="date")
    frame = pd.DataFrame(
        {"open": [10.0, 10.0], "high": [9.5, 12.0], "low": [9.0, 10.5], "close": [9.8, 11.0],
         "volume": [1.0, 1.0]},
        index=index,
    )

    repaired = _repair_ohlc(frame.copy(), "test")

    validate_ohlcv(repaired, "test")
    assert repaired["high"].tolist() == [10.0, 12.0]
    assert repaired["low"].tolist() == [9.0, 10.0]
