"""The bundles a session trades: checked before a start, loaded as one signal.

A session trades its config's bundle from its first decision day (:func:`bundle_signal`),
then every bundle a retrain installs from the day after it finished.  The journal lists them
in order; a resume or parity reloads them all (:func:`journal_signal`), each checked against
the manifest hash journaled when it was installed.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ensemble_bt.errors import BundleError, ConfigurationError, DataError
from live.session.journal import Journal
from models.artifacts import MANIFEST, load_bundle, sha256_file, training_end
from models.features import FEATURE_NAMES
from models.signal import VintageSignal, bars_needed
from models.vintages import fixed_vintage

#: ``predict_end`` of every traded vintage: a bundle predicts until another replaces it.
FAR_FUTURE = pd.Timestamp("2200-01-01")


def bundle_signal(bundle: str | Path, horizon: int, trade_start: pd.Timestamp,
                  ) -> tuple[VintageSignal, str]:
    """The bundle as one vintage predicting from ``trade_start`` on, and its manifest hash.

    Raises
    ------
    ConfigurationError
        ``trade_start`` is not after the bundle's training window (that would be in-sample).
    """
    model, manifest = load_bundle(Path(bundle), feature_names=FEATURE_NAMES, horizon=horizon)
    train_end = training_end(manifest, bundle)
    if trade_start <= train_end:
        raise ConfigurationError(
            f"the session starts {trade_start.date()}, inside the bundle's training window "
            f"(labels through {train_end.date()}); trade a bundle out of sample only: use a "
            f"later --from or a bundle trained with an earlier --end")
    vintage = fixed_vintage(model, manifest, str(bundle), horizon=horizon,
                            predict_start=trade_start, predict_end=FAR_FUTURE)
    return VintageSignal([vintage]), sha256_file(Path(bundle) / MANIFEST)


def check_history(model: object, history_days: int, source: str | Path) -> None:
    """Refuse a bundle whose first decision would lack history.

    Its prediction of a bar reads :func:`models.signal.bars_needed` bars (the features'
    look-back, plus a sequence learner's earlier rows); they must fit in the ``history_days``
    calendar days the feeds backfill, counted at 1.5 calendar days per trading day
    (weekends and holidays).
    """
    bars = bars_needed(model)
    need = math.ceil(bars * 1.5)
    if history_days < need:
        raise ConfigurationError(f"{source}: a prediction reads {bars} bars of history, more "
                                 f"than history_days {history_days} holds; set history_days "
                                 f"to {need} or more")


def check_journal_bundles(journal: Journal) -> None:
    """Every bundle the session traded must be there, unchanged."""
    for row in journal.bundles():
        manifest = Path(row["path"]) / MANIFEST
        if not manifest.is_file():
            raise BundleError(f"{row['path']}: a bundle this session traded is gone; restore "
                              "it to resume")
        if sha256_file(manifest) != row["manifest_sha256"]:
            raise BundleError(f"{row['path']}: the bundle changed since the session traded it "
                              "(manifest hash differs); restore it to resume")


def journal_signal(journal: Journal, horizon: int) -> VintageSignal:
    """One vintage per journaled bundle, each predicting from its ``predict_start``."""
    check_journal_bundles(journal)
    if not journal.bundles():
        raise DataError(f"{journal.path}: the journal lists no bundle; use a new --state "
                        "directory")
    vintages = []
    for row in journal.bundles():
        model, manifest = load_bundle(Path(row["path"]), feature_names=FEATURE_NAMES,
                                      horizon=horizon)
        vintages.append(fixed_vintage(model, manifest, row["path"], horizon=horizon,
                                      predict_start=pd.Timestamp(row["predict_start"]),
                                      predict_end=FAR_FUTURE))
    return VintageSignal(vintages)
