"""One exception tree for the whole project.

*Stop* errors (``ConfigurationError``, ``DataError``, ``BundleError``) mean the input is wrong
and retrying cannot help: the CLI turns them into one line on stderr and exit code 2.
``LeakageError`` means the pipeline itself broke causality: the run fails with exit code 1.
*Retry* errors (``RetryableBrokerError``) mean the same call may succeed later.

The tree lives in ``models`` because every other package already depends on it and it imports
nothing but the standard library.
"""

from __future__ import annotations


class EnsembleBTError(Exception):
    """Base class of every error this project raises on purpose."""


class StopError(EnsembleBTError):
    """Bad input: fixing the input is the only remedy.  The CLI exits with code 2."""


class ConfigurationError(StopError):
    """A configuration file, a CLI argument or a parameter is invalid."""


class DataError(StopError):
    """A dataset is missing, malformed or violates a validation rule."""


class BundleError(StopError):
    """A model bundle is missing, tampered with or incompatible with the pipeline."""


class LeakageError(EnsembleBTError):
    """A model would predict a bar that one of its training labels overlaps."""


class NotFittedError(EnsembleBTError, ValueError):
    """``predict`` or ``save`` was called before ``fit``."""


class WorkerError(EnsembleBTError):
    """A batch task ran past its timeout or its worker died: the batch stopped (exit code 1)."""


class BrokerError(EnsembleBTError):
    """The broker refused or failed a request."""


class RetryableBrokerError(BrokerError):
    """A transient broker failure (rate limit, 5xx, dropped connection): retry with backoff."""
