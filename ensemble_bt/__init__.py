"""ensemble-bt's public API: trained ensembles as backtrader indicators, from your own script.

::

    import backtrader as bt
    from ensemble_bt import EnsemblePredictor, RunRecorder, walk_forward, write_results

The names in :data:`__all__` are the public surface (``docs/plugin.md`` documents each with a
runnable snippet, and ``examples/`` runs them); every other module is internal and may change.

Why the names load lazily (PEP 562 ``__getattr__``): every package of the project imports
``ensemble_bt.errors`` or ``ensemble_bt.jsonio``, and Python runs this file first.  Importing
them must stay cheap and must not pull in backtrader, the learners or any other package, so
this file imports a public name's module only when the name is first used, and keeps it.

Why the modules are named in strings (:data:`_HOMES`) and loaded with
:func:`importlib.import_module`, not imported with a statement: this facade is the outermost
layer, like the CLI, yet it lives in the package that the innermost layer (``errors``,
``jsonio``, ``yamlio``) belongs to.  tests/test_import_graph.py reads import statements, and
an import statement here, even inside ``__getattr__``, would read as that inner layer
importing ``strategies`` and ``backtests``.  The table is checked instead by
tests/test_public_api.py: every name resolves in its home module, and no module of the
project imports this facade back, so it can never close a cycle.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

#: Each public name and the module that defines it, grouped by what a user does with it.
_HOMES: dict[str, str] = {
    # data and signals
    "load_dataset": "backtests.datasets",
    "walk_forward": "backtests.research",
    "WalkForward": "backtests.research",
    "load_signal": "models.bundle_signal",
    "Signal": "models.signal",
    "SeriesSignal": "models.signal",
    # backtrader: the indicator, the ready-made strategy, sizing and the broker
    "EnsemblePredictor": "strategies.predictor",
    "EnsembleStrategy": "strategies.strategy",
    "KellySizer": "strategies.sizers",
    "configure_broker": "backtests.engine",
    # sizing math for your own strategy
    "SizingConfig": "sizing.config",
    "LaggedKelly": "sizing.lagged_kelly",
    "DrawdownBreaker": "sizing.drawdown",
    # results
    "RunRecorder": "strategies.analyzers",
    "write_results": "backtests.userrun",
}

__all__ = list(_HOMES)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        # Also how ``from ensemble_bt import jsonio`` finds a submodule not imported yet.
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later lookups never reach __getattr__
    return value


def __dir__() -> list[str]:
    """The public names, and the submodules loaded so far (``errors``, ``jsonio``...)."""
    loaded = [name for name, value in globals().items() if isinstance(value, ModuleType)
              and value.__name__.startswith(f"{__name__}.")]
    return sorted({*__all__, *loaded})
