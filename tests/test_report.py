"""backtests.report writes a standalone PNG and HTML report."""

from __future__ import annotations

import base64
import re

import numpy as np
import pandas as pd
import pytest

from backtests.report import write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_equity(n: int = 300, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    idx = pd.bdate_range("2015-01-02", periods=n, name="date")
    returns = rng.normal(0.0004, 0.01, n)
    weight = np.clip(rng.normal(1.0, 0.4, n), -0.1, 1.8)
    equity = 100_000 * np.cumprod(1 + weight * returns)
    benchmark = 100_000 * np.cumprod(1 + returns)
    return pd.DataFrame(
        {
            "equity": equity,
            "position_weight": weight,
            "drawdown": equity / np.maximum.accumulate(equity) - 1,
            "prediction": rng.normal(0, 0.001, n),
            "benchmark": benchmark,
        },
        index=idx,
    )


SUMMARY = {
    "symbol": "AAPL",
    "start": "2015-01-02",
    "end": "2016-02-26",
    "bars": 300,
    "horizon": 1,
    "strategy_return": 0.2634,
    "buy_hold_return": 0.1,
    "alpha": 0.1634,
    "cagr": 0.2,
    "sharpe": 1.23456,
    "sortino": 1.9,
    "max_drawdown": -0.1234,
    "n_trades": 42,
    "exposure": 0.95,
    "turnover": 12.5,
    "costs_paid": 1234.5678,
    "direction_accuracy": 0.52,
    "ic": float("nan"),
    "n_vintages": 5,
    "leakage_audit": "pass",
    "config_hash": "abc123",
    "version": "0.1.0",
}


def test_write_report_writes_png_and_html(tmp_path):
    write_report(tmp_path, make_equity(), SUMMARY)

    png = (tmp_path / "report.png").read_bytes()
    assert png.startswith(PNG_MAGIC)
    assert len(png) > 20_000


def test_report_png_is_twelve_by_eight_inches_at_100_dpi(tmp_path):
    write_report(tmp_path, make_equity(), SUMMARY)

    png = (tmp_path / "report.png").read_bytes()
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (1200, 800)


def test_report_html_lists_every_summary_key_and_embeds_the_png(tmp_path):
    write_report(tmp_path, make_equity(), SUMMARY)

    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    for key in SUMMARY:
        assert f"<th>{key}</th>" in page
    match = re.search(r'<img[^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert match is not None
    assert base64.b64decode(match.group(1)) == (tmp_path / "report.png").read_bytes()


def test_report_html_formats_returns_as_percentages(tmp_path):
    write_report(tmp_path, make_equity(), SUMMARY)

    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<td>+26.34%</td>" in page  # strategy_return
    assert "<td>-12.34%</td>" in page  # max_drawdown
    assert "<td>52.00%</td>" in page  # direction_accuracy
    assert "<td>1.2346</td>" in page  # sharpe
    assert "<td>1,234.57</td>" in page  # costs_paid
    assert "<td>n/a</td>" in page  # ic NaN
    assert "<td>42</td>" in page  # n_trades
    assert "AAPL 2015-01-02 \u2013 2016-02-26" in page


def test_report_html_escapes_keys_and_values(tmp_path):
    summary = {**SUMMARY, "symbol": "<script>", "note<b>": "a & b"}

    write_report(tmp_path, make_equity(), summary)

    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<script>" not in page
    assert "&lt;script&gt;" in page
    assert "<th>note&lt;b&gt;</th><td>a &amp; b</td>" in page


def test_write_report_creates_missing_directory_and_handles_no_benchmark(tmp_path):
    out = tmp_path / "nested" / "run"
    equity = make_equity(n=5).drop(columns=["benchmark"])

    write_report(out, equity, {"symbol": "IBM"})

    assert (out / "report.png").read_bytes().startswith(PNG_MAGIC)
    assert "<th>symbol</th><td>IBM</td>" in (out / "report.html").read_text(encoding="utf-8")


def test_write_report_handles_leading_nans_and_non_positive_equity(tmp_path):
    equity = make_equity(n=20)
    equity.iloc[:3, equity.columns.get_loc("prediction")] = np.nan
    equity.iloc[-1, equity.columns.get_loc("equity")] = -5.0  # leveraged wipe-out: linear y

    write_report(tmp_path, equity, SUMMARY)

    assert (tmp_path / "report.png").read_bytes().startswith(PNG_MAGIC)


def test_write_report_rejects_frame_without_required_columns(tmp_path):
    with pytest.raises(ValueError, match="position_weight"):
        write_report(tmp_path, make_equity().drop(columns=["position_weight"]), SUMMARY)
    assert not (tmp_path / "report.html").exists()
