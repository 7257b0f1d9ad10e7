"""Silence third-party tools' chatter (progress lines, INFO logs, warnings) while they work for us.

Our own progress bars and one-line errors are what the user reads; exceptions still propagate.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings

import numpy as np


@contextlib.contextmanager
def quiet(*logger_names: str):
    """Raise the named loggers (and the root logger) to ERROR, drop warnings and stdout, mute numpy's
    floating-point warnings; restore everything afterwards."""
    loggers = [logging.getLogger(n) for n in ("", *logger_names)]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
