"""The local bar store (backtests/store.py) and ``store:`` specs, without a network."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from backtests.datasets import list_datasets, load_dataset, load_datasets
from backtests.store import (
    INDEX_FILE,
    STORE_ENV,
    BarStore,
    expand_specs,
    frame_from_parquet,
    parquet_bytes,
    store_root,
)
from backtests.synthetic import random_walk
from ensemble_bt.errors import DataError

FETCHED = pd.Timestamp("2026-01-05T21:00:00Z")


def plain(bars: pd.DataFrame) -> pd.DataFrame:
    """Bars as every loader returns them: float64, nanosecond dates, no frequency."""
    out = bars.astype("float64")
    out.index = pd.DatetimeIndex(out.index.as_unit("ns"), name="date", freq=None)
    return out


def provenance(frame: pd.DataFrame, **extra) -> dict:
    return {"source": "alpaca", "url": "http://127.0.0.1:1", "feed": "iex",
            "adjustment": "all", "start": frame.index[0].date(),
            "end": frame.index[-1].date(), "fetched_at": FETCHED, **extra}


def put(store: BarStore, **frames: pd.DataFrame) -> None:
    with store.writing() as writer:
        for symbol, frame in frames.items():
            writer.put(symbol, frame, **provenance(frame))


@pytest.fixture
def store(tmp_path, monkeypatch) -> BarStore:
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "store"))
    return BarStore(store_root())


def test_the_store_folder_is_the_flag_else_the_environment_else_data():
    assert store_root("mine", environ={STORE_ENV: "env"}) == Path("mine")
    assert store_root(None, environ={STORE_ENV: "env"}) == Path("env")
    assert store_root(None, environ={}) == Path("data")


def test_bars_round_trip_through_the_parquet_file_exactly():
    bars = random_walk(n=300, seed=3)

    back = frame_from_parquet(parquet_bytes(bars), "test")

    pd.testing.assert_frame_equal(back, plain(bars))


def test_a_stored_symbol_loads_as_a_validated_dataset(store):
    bars = random_walk(n=300, seed=3)
    put(store, AAA=bars)

    frame = load_dataset("store:aaa")

    pd.testing.assert_frame_equal(frame, plain(bars))
    assert frame.attrs == {"symbol": "AAA", "source": "store:AAA"}
    index = json.loads((store.root / INDEX_FILE).read_text())
    entry = index["symbols"]["AAA"]
    assert (entry["rows"], entry["first"], entry["feed"]) == (300, "2000-01-03", "iex")
    assert (store.root / entry["file"]).is_file()


def test_a_comma_list_after_store_names_stored_symbols(store):
    put(store, AAA=random_walk(n=50, seed=1), BBB=random_walk(n=50, seed=2))

    assert list(load_datasets(["store:AAA,BBB"])) == ["AAA", "BBB"]
    assert list(load_datasets(["store:AAA", "BBB"])) == ["AAA", "BBB"]  # split by the caller
    assert list(load_datasets(["MSFT", "store:BBB"])) == ["MSFT", "BBB"]


@pytest.mark.parametrize("specs, expanded", [
    (["store:a,b"], ["store:A", "store:B"]),
    (["store:A", "B"], ["store:A", "store:B"]),
    (["B", "store:A"], ["B", "store:A"]),
    (["store:A", "x.csv", "IBM"], ["store:A", "x.csv", "IBM"]),
    (["store:A", "dir/B"], ["store:A", "dir/B"]),
    (["AAPL,MSFT"], ["AAPL,MSFT"]),
])
def test_store_specs_expand_to_one_spec_per_symbol(specs, expanded):
    assert expand_specs(specs) == expanded


@pytest.mark.parametrize("spec, needle", [
    ("store:", "no symbol"),
    ("store:../etc", "not a ticker"),
    ("store:ZZZ", "not in the store"),
    ("store:AAA,BBB", "names 2 symbols"),
])
def test_bad_store_specs_are_refused_in_one_line(store, spec, needle):
    with pytest.raises(DataError, match=needle):
        load_dataset(spec)


def test_an_altered_file_is_refused_with_the_fix(store):
    put(store, AAA=random_walk(n=50, seed=1))
    entry = store.entry("AAA")
    path = store.root / entry.file
    path.write_bytes(path.read_bytes()[:-1] + b"\0")

    with pytest.raises(DataError, match="does not match the sha256.*data fetch AAA"):
        load_dataset("store:AAA")


def test_stored_bars_pass_the_same_validation_as_a_csv(store):
    bars = random_walk(n=50, seed=1)
    bars.iloc[7, bars.columns.get_loc("high")] = 1.0  # below the low
    put(store, AAA=bars)

    with pytest.raises(DataError, match=r"store:AAA .*data row 8 \(2000-01-12\): high < low"):
        load_dataset("store:AAA")


@pytest.mark.parametrize("text, needle", [
    ("{", "not strict JSON"),
    ('{"format": "ensemble-bt store", "version": 1, "symbols": {"AAA": NaN}}', "strict JSON"),
    ('{"format": "mine", "version": 1, "symbols": {}}', "not an ensemble-bt store index"),
    ('{"format": "ensemble-bt store", "version": 1, "symbols": {"../x": {}}}', "symbols"),
])
def test_a_malformed_index_is_refused(store, text, needle):
    store.root.mkdir(parents=True)
    (store.root / INDEX_FILE).write_text(text)

    with pytest.raises(DataError, match=needle):
        store.read_index()


def test_a_write_that_fails_leaves_the_previous_index_and_files(store):
    put(store, AAA=random_walk(n=50, seed=1))
    before = {p.name: p.read_bytes() for p in store.root.rglob("*") if p.is_file()}

    with pytest.raises(RuntimeError), store.writing() as writer:
        writer.put("AAA", random_walk(n=60, seed=9), **provenance(random_walk(n=60, seed=9)))
        writer.put("BBB", random_walk(n=60, seed=8), **provenance(random_walk(n=60, seed=8)))
        raise RuntimeError("killed")

    after = {p.name: p.read_bytes() for p in store.root.rglob("*") if p.is_file()}
    assert after == before
    assert len(load_dataset("store:AAA")) == 50


def test_the_next_write_removes_what_a_killed_one_left_and_nothing_else(store):
    put(store, AAA=random_walk(n=50, seed=1))
    old = store.entry("AAA").file
    bars = store.root / "bars"
    leftovers = [bars / "BBB_0123456789abcdef.parquet",
                 bars / ".AAA_0123456789abcdef.parquet.7.tmp", store.root / f".{INDEX_FILE}.7.tmp"]
    mine = [bars / "notes.txt", store.root / "prices.csv", store.root / ".hidden.7.tmp"]
    for path in leftovers + mine:
        path.write_text("x")

    put(store, AAA=random_walk(n=60, seed=2))

    assert [p for p in leftovers if p.exists()] == []
    assert all(p.exists() for p in mine)
    assert not (store.root / old).exists() and store.entry("AAA").rows == 60


def test_datasets_lists_stored_symbols_after_the_embedded_ones(store):
    put(store, AAA=random_walk(n=50, seed=1))

    rows = list_datasets(store)

    assert rows[-1] == {"name": "store:AAA", "bars": 50, "start": "2000-01-03",
                        "end": "2000-03-10", "source": f"{store.root} (iex, all)"}
    assert [r["name"] for r in rows[:-1]] == [r["name"] for r in list_datasets()]
