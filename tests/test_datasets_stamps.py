"""backtests.datasets on what a --data path names: zoned and intraday timestamps, and paths
that are directories, FIFOs or symlink loops."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from backtests.datasets import (
    load_dataset,
)
from ensemble_bt.errors import DataError

HEADER = "Date,Open,High,Low,Close,Volume"


def write_csv(tmp_path: Path, rows: list[str], header: str = HEADER, name: str = "px.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


# --- timestamps: a bar never moves to another session ------------------------------------


@pytest.mark.parametrize(("stamps", "dates"), [
    # a New York close stamped with a fixed offset: the NY session, never the next day
    (["2002-10-03T20:00:00-05:00", "2002-10-04T20:00:00-05:00"], ["2002-10-03", "2002-10-04"]),
    # the same close in UTC, across a DST change
    (["2002-10-04T20:00:00Z", "2003-01-07T21:00:00Z"], ["2002-10-04", "2003-01-07"]),
    # dates written at midnight UTC stay their own date (not the NY evening before)
    (["2002-10-04T00:00:00Z", "2002-10-07T00:00:00Z"], ["2002-10-04", "2002-10-07"]),
    # Alpaca's midnight-New-York stamps, with DST offsets mixed in one column
    (["2002-10-04T00:00:00-04:00", "2002-11-04T00:00:00-05:00"], ["2002-10-04", "2002-11-04"]),
])
def test_zoned_csv_timestamps_keep_their_new_york_session(tmp_path: Path, stamps, dates) -> None:
    rows = [f"{stamp},10,11,9,10.5,1000" for stamp in stamps]
    path = write_csv(tmp_path, rows, header="timestamp,open,high,low,close,volume")

    frame = load_dataset(str(path))

    assert list(frame.index) == [pd.Timestamp(d) for d in dates]
    assert all(day.dayofweek < 5 for day in frame.index)


@pytest.mark.parametrize("zone", ["Asia/Tokyo", "UTC", "America/New_York", "Europe/London"])
def test_parquet_index_in_any_zone_keeps_new_york_sessions(tmp_path: Path, zone: str) -> None:
    sessions = pd.bdate_range("2002-10-01", periods=8)
    closes = (sessions + pd.Timedelta(hours=16)).tz_localize("America/New_York")
    frame = pd.DataFrame({"open": 10.0, "high": 11.0, "low": 9.0, "close": 10.5,
                          "volume": 1e3}, index=closes.tz_convert(zone).rename("date"))
    path = tmp_path / "zoned.parquet"
    frame.to_parquet(path)

    loaded = load_dataset(str(path))

    assert list(loaded.index) == list(sessions)


def test_parquet_index_of_dates_localised_to_tokyo_keeps_its_dates(tmp_path: Path) -> None:
    sessions = pd.bdate_range("2002-10-01", periods=5)
    frame = pd.DataFrame({"open": 10.0, "high": 11.0, "low": 9.0, "close": 10.5,
                          "volume": 1e3}, index=sessions.tz_localize("Asia/Tokyo").rename("date"))
    path = tmp_path / "tokyo.parquet"
    frame.to_parquet(path)

    assert list(load_dataset(str(path)).index) == list(sessions)


@pytest.mark.parametrize("rows", [
    ["2020-01-02 10:30,10,11,9,10.5,1000", "2020-01-02 11:30,10,11,9,10.5,1000"],
    ["2020-01-02,10,11,9,10.5,1000", "2020-01-03 14:35,10,11,9,10.5,1000"],
])
def test_intraday_timestamps_in_a_daily_file_are_refused(tmp_path: Path, rows) -> None:
    path = write_csv(tmp_path, rows, name="intraday.csv")

    with pytest.raises(DataError, match=r"intraday\.csv: data row 2 .*intraday timestamps"):
        load_dataset(str(path))


def test_daily_bars_all_stamped_at_one_time_of_day_load(tmp_path: Path) -> None:
    rows = ["2020-01-02 16:00,10,11,9,10.5,1000", "2020-01-03 16:00,10,11,9,10.5,1000"]

    frame = load_dataset(str(write_csv(tmp_path, rows)))

    assert list(frame.index) == [pd.Timestamp("2020-01-02"), pd.Timestamp("2020-01-03")]


# --- what a --data path names ----------------------------------------------------------------


def test_a_directory_is_named_as_a_directory(tmp_path: Path) -> None:
    folder = tmp_path / "bars.csv"
    folder.mkdir()

    with pytest.raises(DataError, match="bars.csv.*a directory, not a data file"):
        load_dataset(str(folder))


def test_a_fifo_is_named_as_a_fifo_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)

    with pytest.raises(DataError, match="pipe.csv.*a FIFO"):
        load_dataset(str(fifo))


def test_a_symlink_loop_is_named_as_one(tmp_path: Path) -> None:
    (tmp_path / "a.csv").symlink_to(tmp_path / "b.csv")
    (tmp_path / "b.csv").symlink_to(tmp_path / "a.csv")

    with pytest.raises(DataError, match="a.csv.*symlink loop"):
        load_dataset(str(tmp_path / "a.csv"))
