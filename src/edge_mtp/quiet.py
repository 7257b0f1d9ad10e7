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


def native_logs_off() -> None:
    """Send file descriptor 2 to /dev/null for the rest of the process, keeping Python's own stderr.

    LiteRT, the LiteRT converter and onnxruntime log from C++ straight to fd 2 (accelerator registry,
    plugin loading, oneDNN notes; even at exit, after Python is done), ~50 lines per command, in which our
    one-line errors drown. Python's `sys.stderr` moves to a duplicate of the original fd, so errors,
    warnings and progress bars still show. `--verbose` skips this.
    """
    import os
    import sys

    sys.stderr.flush()
    original = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.stderr = os.fdopen(original, "w", buffering=1, encoding=sys.stderr.encoding, errors="backslashreplace")
