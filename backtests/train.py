"""``ensemble-bt train``: validate walk-forward, gate, then fit a production bundle."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from loguru import logger

from backtests.config import BacktestConfig
from backtests.datasets import load_dataset
from backtests.plan import resolve_period, stack_factory, train_vintages
from ensemble_bt.errors import ConfigurationError
from models.artifacts import MANIFEST, save_bundle
from models.features import FEATURE_NAMES, build_features
from models.metrics import (
    direction_accuracy,
    information_coefficient,
    sign_imbalance,
    variance_collapse,
    walk_forward_efficiency,
)
from models.signal import VintageSignal
from models.targets import forward_log_return

WFE_MIN = 40.0


class GateRefused(ConfigurationError):
    """The walk-forward gate refused to train a production bundle."""


def _stats(values: np.ndarray) -> dict[str, float]:
    v = values[np.isfinite(values)]
    return {"positive_pct": float(np.mean(v > 0)), "mean": float(np.mean(v)),
            "std": float(np.std(v, ddof=1)), "n": int(len(v))}


def walk_forward_report(ohlcv: pd.DataFrame, cfg: BacktestConfig,
                        progress: bool) -> dict[str, Any]:
    """Out-of-sample scores of the walk-forward vintages over the data up to ``--end``."""
    period = resolve_period(ohlcv.index, cfg.model_copy(update={"start": None}))
    vintages = train_vintages(ohlcv, period, cfg, progress=progress)
    pred = VintageSignal(vintages).predict_batch(ohlcv)[period.start:period.end + 1]
    actual = forward_log_return(ohlcv["close"], cfg.horizon).to_numpy()[
        period.start:period.end + 1]
    val_acc = float(np.mean([v.holdout_dir_acc for v in vintages]))
    test_acc = direction_accuracy(pred, actual)
    return {
        "n_vintages": len(vintages), "validation_dir_acc": val_acc,
        "test_dir_acc": test_acc, "test_ic": information_coefficient(pred, actual),
        "wfe": walk_forward_efficiency(test_acc, val_acc),
        "sign_imbalance": sign_imbalance(pred), "variance_collapse": variance_collapse(
            pred, actual), "holdout_target": _stats(actual),
    }


def gate_failures(report: dict[str, Any]) -> list[str]:
    """Reasons to refuse a production bundle; empty when the gate passes."""
    reasons = []
    if not report["validation_dir_acc"] > 0.5:
        reasons.append(f"validation direction accuracy {report['validation_dir_acc']:.4f} <= 0.5")
    wfe = report["wfe"]
    if not np.isfinite(wfe) or wfe < WFE_MIN:
        reasons.append(f"WFE {wfe:.1f}% < {WFE_MIN:.0f}% (test accuracy "
                       f"{report['test_dir_acc']:.4f} vs validation "
                       f"{report['validation_dir_acc']:.4f})")
    if report["sign_imbalance"]["fired"]:
        reasons.append(f"sign imbalance: {report['sign_imbalance']['positive_share']:.1%} of "
                       "predictions positive")
    if report["variance_collapse"]["fired"]:
        reasons.append(f"variance collapse: prediction std is "
                       f"{report['variance_collapse']['std_ratio']:.4f} of the target's")
    return reasons


def _check_writable(out: Path) -> None:
    """Fail before training, not after it, when the bundle cannot be written, or could not be
    loaded: a bundle holds only its own files, so ``out`` is new, empty or a bundle."""
    if out.exists() and not out.is_dir():
        raise ConfigurationError(f"--out {out}: is a file, not a bundle directory")
    if out.is_dir() and not (out / MANIFEST).is_file():
        other = next(iter(sorted(out.iterdir())), None)
        if other is not None:
            raise ConfigurationError(f"--out {out}: holds {other.name[:80]!r} and is not a "
                                     "bundle; a bundle holds only its own files: choose a new "
                                     "folder")
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent  # the folder the new ones will be created in
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigurationError(f"--out {out}: cannot create it under {parent}; choose a "
                                 "writable folder")


def train_bundle(cfg: BacktestConfig, out: Path, skip_gate: bool = False,
                 progress: bool = True) -> Path:
    """Gate on walk-forward validation, then fit on all labelled history up to ``end``."""
    _check_writable(Path(out))
    ohlcv = load_dataset(cfg.data)
    if cfg.end is not None:
        ohlcv = ohlcv.loc[: pd.Timestamp(cfg.end)]
    report = walk_forward_report(ohlcv, cfg, progress)
    reasons = gate_failures(report)
    if reasons and not skip_gate:
        raise GateRefused("the walk-forward gate refused the bundle: " + "; ".join(reasons)
                          + " (--skip-gate overrides and is recorded in the manifest)")
    logger.info("walk-forward: validation accuracy {:.4f}, test accuracy {:.4f}, WFE {:.1f}%",
                report["validation_dir_acc"], report["test_dir_acc"], report["wfe"])
    features = build_features(ohlcv)
    target = forward_log_return(ohlcv["close"], cfg.horizon)
    rows = np.flatnonzero(features.notna().all(axis=1).to_numpy() & target.notna().to_numpy())
    make = stack_factory(cfg)
    model = make().fit(features.to_numpy()[rows], target.to_numpy()[rows])
    dates = ohlcv.index
    label_end = int(rows[-1]) + cfg.horizon
    y_train = target.to_numpy()[rows]
    return save_bundle(
        out, model, symbol=str(ohlcv.attrs.get("symbol", cfg.data)),
        feature_names=list(FEATURE_NAMES), horizon=cfg.horizon,
        training_window={"start": dates[rows[0]].date().isoformat(),
                         "end": dates[label_end].date().isoformat(),
                         "last_row": dates[rows[-1]].date().isoformat(), "rows": len(rows)},
        target_stats={"train": _stats(y_train), "holdout": report["holdout_target"]},
        holdout_dir_acc=float(model.validation_["dir_acc"]),
        train_positive_pct=float(np.mean(y_train > 0)),
        walk_forward=report, wfe=report["wfe"],
        gate={"passed": not reasons, "skipped": bool(skip_gate and reasons),
              "reasons": reasons},
        devices=model.devices, stack=cfg.stack.model_dump(), models=list(cfg.models),
        deep_learners={lr.name: lr.manifest_fields() for lr in model.learners_
                       if hasattr(lr, "manifest_fields")},
        config_hash=cfg.config_hash())
