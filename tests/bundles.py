"""The small trained bundles several test modules share, and the data they are trained on.

Two bundles, each an xgb+lgbm stack on an AR(1) series with a planted edge (1800 business
days from 2000-01-03), horizon 1, one refit a year, trained through the gate in seconds:

- the *planted* bundle (``ar1.csv``, trained up to 2005-12-30): what ``train`` writes, for
  the bundle checks (tests/test_bundles.py, tests/test_bad_input_bundle.py);
- the *replay* bundle (``AAA.csv``, trained up to :data:`TRAIN_END`): what a paper session
  trades from :data:`tests.sessions.REPLAY_FROM` on (tests/test_paper.py, the daemon tests).

A pytest plugin of tests/conftest.py: its session-scoped fixtures (``planted``,
``planted_bundle``, ``replay_data``, ``replay_bundle``) train each bundle once per test run
and reach every test module without an import.  They are shared: a test that changes a
bundle or its data works on a copy.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from backtests.config import load_config
from backtests.synthetic import ar1_returns, write_csv
from backtests.train import train_bundle

#: The planted bundle's training settings.
TRAIN = {"horizon": 1, "retrain_every": 252, "end": "2005-12-30"}
#: The last day the replay bundle may train on.
TRAIN_END = "2004-12-31"


def write_planted(folder: Path) -> Path:
    """An AR(1) series with a planted edge, 2000-01-03..2006-11 (1800 business days)."""
    return write_csv(ar1_returns(n=1800, seed=11), folder / "ar1.csv")


def train_planted(data: Path, out: Path) -> Path:
    """A gated xgb+lgbm bundle on ``data`` up to 2005-12-30, horizon 1 (a few seconds)."""
    return train_bundle(load_config(None, {"data": str(data), **TRAIN}), out, progress=False)


def write_replay_data(folder: Path) -> dict[str, Path]:
    """Two AR(1) symbols to replay: ``AAA`` (the planted series) and ``BBB``."""
    return {"AAA": write_csv(ar1_returns(n=1800, seed=11), folder / "AAA.csv"),
            "BBB": write_csv(ar1_returns(n=1800, seed=12), folder / "BBB.csv")}


def train_replay(data: Path, out: Path) -> Path:
    """A gated xgb+lgbm bundle on ``data`` up to :data:`TRAIN_END`, horizon 1."""
    cfg = load_config(None, {"data": str(data), "horizon": 1, "retrain_every": 252,
                             "end": TRAIN_END})
    return train_bundle(cfg, out, progress=False)


@pytest.fixture(scope="session")
def planted(tmp_path_factory) -> Path:
    """The planted bundle's data, ``ar1.csv``."""
    return write_planted(tmp_path_factory.mktemp("planted-data"))


@pytest.fixture(scope="session")
def planted_bundle(planted, tmp_path_factory) -> Path:
    return train_planted(planted, tmp_path_factory.mktemp("planted-bundle") / "bundle")


@pytest.fixture(scope="session")
def replay_data(tmp_path_factory) -> dict[str, Path]:
    """``{"AAA": AAA.csv, "BBB": BBB.csv}``."""
    return write_replay_data(tmp_path_factory.mktemp("replay-data"))


@pytest.fixture(scope="session")
def replay_bundle(replay_data, tmp_path_factory) -> Path:
    return train_replay(replay_data["AAA"], tmp_path_factory.mktemp("replay-bundle") / "bundle")
