"""Which target K/V slots the drafter reads (runtime/views.py, docs/loop.md#the-drafters-kv-views): the
worked examples of docs/loop.md, transformers' tensor slicing replayed on lists of slot numbers, and the
bundle drafter's (input_pos, mask) convention in both directions (runtime and graph)."""

from __future__ import annotations

import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from edge_mtp.export.graphs import DrafterGraph
from edge_mtp.runtime.views import (
    DrafterViews,
    drafter_views,
    mask_inputs,
    views_ending_at,
)

W = 16  # the tiny presets' sliding window


@pytest.mark.parametrize(("prev", "length", "full", "sliding"), [
    ((0, 11), 13, (0, 11), (0, 11)),     # after a 12-token prefill
    ((17, 21), 22, (0, 21), (5, 21)),    # after a round at q=17 with n=3 < K=4: slot 21 is stale
    ((21, 25), 27, (0, 25), (9, 25)),    # after a fully accepted round (n = K = 4): nothing stale
    ((16, 20), 18, (0, 17), (2, 18)),    # after a round at q=16 with n=0: 17 (full), 17..18 (sliding) stale
])
def test_worked_examples(prev, length, full, sliding):
    assert drafter_views(*prev, length, W, "hf") == DrafterViews(sliding=sliding, full=full)


def test_clean_view_shows_accepted_tokens_only():
    assert drafter_views(16, 20, 18, W, "clean") == DrafterViews(sliding=(0, 16), full=(0, 16))
    assert drafter_views(30, 34, 40, W, "clean") == DrafterViews(sliding=(22, 38), full=(0, 38))
    with pytest.raises(ValueError):
        drafter_views(0, 3, 5, W, "stale")


def _hf_view(prev_first: int, prev_last: int, length: int, window: int) -> DrafterViews:
    """transformers' way, on lists: the previous target forward returned the full layer's K/V for slots
    0..prev_last and the sliding layer's for its last W-1 past slots plus the new ones; the drafter slices
    both to the first `length` entries, and its sliding layers keep the last W+1 of those."""
    full = list(range(prev_last + 1))[:length]
    sliding = list(range(max(0, prev_first - (window - 1)), prev_last + 1))[:length][-(window + 1):]
    return DrafterViews(sliding=(sliding[0], sliding[-1]), full=(full[0], full[-1]))


def _loop_states(rounds: int, k_max: int, seed: int):
    """(prev_first, prev_last, length) of every drafting round of a loop with random acceptance."""
    rng = random.Random(seed)
    prompt = rng.randint(1, 40)
    prev, length = (0, prompt - 1), prompt + 1
    for _ in range(rounds):
        yield (*prev, length)
        q = length - 1
        n = rng.randint(0, k_max)
        prev, length = (q, q + k_max), length + n + 1


def test_hf_view_equals_transformers_slicing_over_random_loops():
    for seed in range(200):
        for state in _loop_states(30, 4, seed):
            assert drafter_views(*state, W, "hf") == _hf_view(*state, W), state


@pytest.mark.parametrize("mode", ["hf", "clean"])
def test_one_mask_input_expresses_both_views(mode):
    """Every view either mode produces is `views_ending_at` its sliding end, so the bundle drafter's single
    mask input suffices; the graph (export/graphs.py) decodes (input_pos, mask) back into the same ranges."""
    context = 160
    graph = SimpleNamespace(window=W)
    for seed in range(40):
        for prev_first, prev_last, length in _loop_states(20, 4, seed):
            if prev_last >= context:
                break
            views = drafter_views(prev_first, prev_last, length, W, mode)
            query = length - 1
            assert views == views_ending_at(views.sliding[1], query, W)
            input_pos, mask = mask_inputs(views, query, context, W)
            assert input_pos.tolist() == [query - 1] and mask.shape == (1, 1, 1, context)
            assert np.flatnonzero(mask).tolist() == list(range(views.sliding[1] + 1))
            q, sliding, full = DrafterGraph.views(graph, torch.from_numpy(input_pos), torch.from_numpy(mask))
            assert q.tolist() == [query]
            assert DrafterViews(tuple(sliding[0].tolist()), tuple(full[0].tolist())) == views


def test_clean_view_is_litert_lms_mask():
    """LiteRT-LM passes slots 0..input_pos: that is the clean view."""
    input_pos, mask = mask_inputs(drafter_views(0, 0, 40, W, "clean"), 39, 64, W)
    assert input_pos.tolist() == [38] and np.flatnonzero(mask).tolist() == list(range(39))


def test_a_view_the_mask_cannot_express_is_refused():
    with pytest.raises(RuntimeError):
        mask_inputs(DrafterViews(sliding=(3, 20), full=(0, 20)), 21, 64, W)
