"""Which target K/V slots the drafter sees in a round (docs/loop.md#the-drafters-kv-views).

transformers hands the drafter the K/V tensors the *previous* target forward attended to, sliced to the
current sequence length. After a partial rejection those still hold rejected drafts' K/V ("stale"
slots). The `hf` view reproduces that exactly (needed for draft-for-draft parity); the `clean` view
shows only accepted tokens. Both leave the final greedy tokens unchanged.

Slots are absolute positions; ranges are inclusive.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KV_VIEWS = ("hf", "clean")


@dataclass(frozen=True)
class DrafterViews:
    sliding: tuple[int, int]
    full: tuple[int, int]


def drafter_views(prev_first: int, prev_last: int, length: int, window: int, mode: str = "hf") -> DrafterViews:
    """Views for a round that starts with `length` known tokens.

    `prev_first..prev_last` are the positions the previous target forward processed (prefill: 0..P-1,
    verify: q..q+K). The drafter's sliding layers see W+1 entries (its window counts |q - kv| <= W and
    excludes its own position), the full layer everything up to its range end.
    """
    if mode == "clean":
        last = length - 2  # the newest token (position length-1) has not been through the target yet
        return DrafterViews(sliding=(max(0, last - window), last), full=(0, last))
    if mode != "hf":
        raise ValueError(f"unknown drafter KV view {mode!r}; expected one of {KV_VIEWS}")
    full = (0, min(prev_last, length - 1))
    start = max(0, prev_first - (window - 1))  # transformers keeps W-1 past entries + the new ones
    end = min(prev_last, start + length - 1)
    return DrafterViews(sliding=(max(start, end - window), end), full=full)


def views_ending_at(end: int, query: int, window: int) -> DrafterViews:
    """The views a single "visible up to slot `end`" mask expresses (the bundle drafter's input):
    full layers read 0..min(end, query), sliding layers end-W..end. Both `drafter_views` modes always
    have this form, which is why one mask input suffices (`edge_mtp.export.graphs.DrafterGraph`)."""
    return DrafterViews(sliding=(max(0, end - window), end), full=(0, min(end, query)))


def mask_inputs(views: DrafterViews, query: int, context: int, window: int) -> tuple[np.ndarray, np.ndarray]:
    """The exported drafter graph's (`input_pos` [1] int32, `mask` [1,1,1,S] bool) for a round whose query
    token sits at `query`, in LiteRT-LM's convention (input_pos = query - 1, mask = slots 0..end)."""
    end = views.sliding[1]
    if views != views_ending_at(end, query, window):
        raise RuntimeError(f"drafter view {views} is not expressible by the graph's mask input")
    return np.array([query - 1], np.int32), (np.arange(context) <= end).reshape(1, 1, 1, -1)
