"""The machine's memory bandwidth, measured as a large numpy copy.

Convention: bytes read + bytes written (2 x the array size) per copy, best of `reps` copies, one
thread (numpy's copy is single-threaded). The arrays are far larger than any CPU cache.
"""

from __future__ import annotations

import time

import numpy as np


def copy_bandwidth(mib: int = 512, reps: int = 5) -> float:
    """GB/s (1e9 bytes per second), read + write, of the fastest of `reps` copies of `mib` MiB."""
    src = np.ones(mib * 2**20 // 8, dtype=np.float64)
    dst = np.empty_like(src)
    np.copyto(dst, src)  # touch every page once before timing
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t0)
    return 2 * src.nbytes / best / 1e9
