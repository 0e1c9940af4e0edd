"""Alpaca credentials from the environment: the one place they are read.

Credentials are never part of a config, a journal, a log or a results file; they come from
``APCA_API_KEY_ID`` and ``APCA_API_SECRET_KEY``, the variables Alpaca's own SDKs read.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import NamedTuple

from ensemble_bt.errors import ConfigurationError

KEY_ENV, SECRET_ENV = "APCA_API_KEY_ID", "APCA_API_SECRET_KEY"


class Credentials(NamedTuple):
    """A key pair, and whether it came from the environment (else from the defaults)."""

    key_id: str
    secret: str
    from_env: bool


def credentials_from_env(default: tuple[str, str] | None = None,
                         environ: Mapping[str, str] | None = None) -> Credentials:
    """The key pair in the environment, or ``default`` when neither variable is set.

    Raises
    ------
    ConfigurationError
        Only one of the two variables is set, or neither is and there is no default.  The
        message names the variables, never a value.
    """
    env = os.environ if environ is None else environ
    key_id, secret = env.get(KEY_ENV, ""), env.get(SECRET_ENV, "")
    if key_id and secret:
        return Credentials(key_id, secret, True)
    if key_id or secret:
        either = ", or neither for the local defaults" if default is not None else ""
        raise ConfigurationError(f"only one of {KEY_ENV} and {SECRET_ENV} is set; set both"
                                 f"{either}")
    if default is None:
        raise ConfigurationError(f"set {KEY_ENV} and {SECRET_ENV} in the environment (the "
                                 "keys of the account, from the Alpaca dashboard)")
    return Credentials(*default, False)
