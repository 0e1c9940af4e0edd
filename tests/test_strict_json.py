"""Every JSON file the project writes parses with a strict parser: no NaN, no Infinity.

Real runs, small: a walk-forward backtest, a bundle (trained by ``train``) and a backtest of
it, a short paper replay of that bundle with its parity report and ``paper status``, and a
one-cell robustness grid.  Then every ``*.json`` under them is read with ``json.loads`` set to
refuse the non-standard constants that Python's own writer emits by default.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from backtests.config import load_config
from backtests.robustness.batch import load_robustness_config, run_robustness
from backtests.runner import run_backtest
from backtests.synthetic import ar1_returns, write_csv
from live.session.paper import run_paper
from live.session.parity import run_parity
from tests.bundles import train_replay
from tests.conftest import run_cli
from tests.sessions import REPLAY_FROM, paper_config

pytestmark = pytest.mark.slow


def strict_loads(text: str) -> object:
    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")
    return json.loads(text, parse_constant=refuse)


def non_strict(root: Path) -> list[str]:
    """``path: reason`` for every JSON file under ``root`` that a strict parser refuses."""
    bad = []
    for path in sorted(root.rglob("*.json")):
        try:
            strict_loads(path.read_text())
        except ValueError as exc:
            bad.append(f"{path.relative_to(root)}: {exc}")
    return bad


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """A folder holding every kind of output, written by real (short) runs."""
    root = tmp_path_factory.mktemp("strict")
    data = write_csv(ar1_returns(n=1800, seed=11), root / "AAA.csv")
    run_backtest(load_config(None, {"data": str(data), "horizon": 1, "retrain_every": 252,
                                     "out": str(root / "backtest")}), progress=False)
    bundle = train_replay(data, root / "bundle")
    run_backtest(load_config(None, {"data": str(data), "horizon": 1, "bundle": str(bundle),
                                    "out": str(root / "bundle-backtest")}), progress=False)
    session = run_paper(paper_config(bundle), replay=[str(data)], max_bars=20,
                        replay_from=pd.Timestamp(REPLAY_FROM).date(), state=root / "paper")
    run_parity(session)
    (root / "grid.yaml").write_text(f"horizon: 1\nretrain_every: 252\n"
                                    f"cache_dir: {root / 'cache'}\n")
    run_robustness(load_robustness_config(root / "grid.yaml", {
        "data": str(data), "windows": "2004:2004", "costs": "0", "workers": 1,
        "out": str(root / "robustness")}), progress=False)
    return root


def test_every_json_file_of_a_backtest_bundle_paper_session_and_grid_is_strict(runs):
    found = {p.name for p in runs.rglob("*.json")}
    assert {"summary.json", "vintages.json", "leakage_audit.json", "manifest.json",
            "stack.json", "xgb.params.json", "lgbm.params.json", "session.json",
            "status.json", "parity.json"} <= found
    assert len(list((runs / "robustness").rglob("summary.json"))) == 1
    assert non_strict(runs) == []


def test_paper_status_prints_strict_json(runs):
    proc = run_cli("paper", "status", "--state", str(runs / "paper"), cwd=runs)
    assert proc.returncode == 0, proc.stderr
    assert isinstance(strict_loads(proc.stdout), dict)


def test_the_strict_check_itself_refuses_nan_and_infinity(tmp_path):
    (tmp_path / "a.json").write_text('{"wfe": NaN}')
    (tmp_path / "b.json").write_text('[Infinity]')
    (tmp_path / "c.json").write_text('{"wfe": null}')
    assert non_strict(tmp_path) == ["a.json: NaN is not JSON", "b.json: Infinity is not JSON"]
