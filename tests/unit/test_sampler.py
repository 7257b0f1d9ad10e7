"""The random stream and the distribution pipeline (runtime/sampling.py, docs/sampling.md) against known
answers and independent implementations: PCG32's reference output, numpy's 53-bit uniform, transformers'
temperature/top-k/top-p warpers; and speculative sampling's acceptance rule, whose output distribution
is checked exactly (no Monte Carlo) to be the target's (Leviathan et al. 2023, Theorem 1)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers.generation.logits_process import (
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from edge_mtp.runtime.loop import accept_sampled
from edge_mtp.runtime.sampling import (
    PCG32,
    Sampler,
    SamplingConfig,
    _top_k_floor,
    distribution,
    ranked,
    draw,
    residual,
)


def test_pcg32_matches_the_reference_implementation():
    # pcg32-demo from pcg-random.org: pcg32_srandom_r(&rng, 42u, 54u), first six outputs.
    rng = PCG32(42, 54)
    assert [rng.next_u32() for _ in range(6)] == [
        0xA15C02B7, 0x7B47F409, 0xBA1D3330, 0x83D2F293, 0xBFA4784B, 0xCBED606E]


def test_uniform_is_numpys_53_bit_double_of_two_32_bit_outputs():
    """numpy builds its doubles from MT19937's 32-bit outputs with the same formula: feed ours those outputs."""
    raw = iter(int(x) for x in np.random.MT19937(5).random_raw(2000))
    rng = PCG32(0)
    rng.next_u32 = lambda: next(raw)
    expected = np.random.Generator(np.random.MT19937(5)).random(1000)
    assert [rng.uniform() for _ in range(1000)] == expected.tolist()


def _hf_distribution(logits: np.ndarray, cfg: SamplingConfig) -> np.ndarray:
    x = torch.tensor(logits, dtype=torch.float64)[None]
    x = TemperatureLogitsWarper(cfg.temperature)(None, x)
    if cfg.top_k:
        x = TopKLogitsWarper(cfg.top_k)(None, x)
    if cfg.top_p < 1.0:
        x = TopPLogitsWarper(cfg.top_p)(None, x)
    return torch.softmax(x, dim=-1)[0].numpy()


@pytest.mark.parametrize("cfg", [
    SamplingConfig(1.0), SamplingConfig(0.7), SamplingConfig(1.3, top_k=5), SamplingConfig(0.8, top_p=0.9),
    SamplingConfig(1.0, top_k=40, top_p=0.5), SamplingConfig(2.0, top_k=3, top_p=0.99),
])
def test_distribution_equals_transformers_warpers(cfg):
    rng = np.random.default_rng(0)
    for _ in range(20):
        logits = rng.normal(size=97) * 3  # no ties
        ours = distribution(logits, cfg)
        theirs = _hf_distribution(logits, cfg)
        assert np.flatnonzero(ours).tolist() == np.flatnonzero(theirs).tolist()
        np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)


def test_distribution_ties_and_nucleus_by_hand():
    logits = np.array([1.0, 3.0, 2.0, 3.0, -1.0])
    p = distribution(logits, SamplingConfig(temperature=0.5))
    expected = np.exp(logits / 0.5) / np.exp(logits / 0.5).sum()
    np.testing.assert_allclose(p, expected, rtol=1e-12)
    top2 = distribution(logits, SamplingConfig(top_k=2))  # tie at 3.0: both ids 1 and 3 kept
    assert np.flatnonzero(top2).tolist() == [1, 3] and top2[1] == pytest.approx(0.5)
    top1 = distribution(logits, SamplingConfig(top_k=1))  # tie broken towards the smaller id
    assert np.flatnonzero(top1).tolist() == [1]
    nucleus = distribution(logits, SamplingConfig(top_p=0.8))  # 0.39 + 0.39 < 0.8 -> needs id 2 too
    assert np.flatnonzero(nucleus).tolist() == [1, 2, 3]
    assert nucleus.sum() == pytest.approx(1.0)


def test_draw_is_inverse_cdf_in_id_order_and_skips_zero_mass():
    probs = np.array([0.0, 0.25, 0.0, 0.75, 0.0])
    assert [draw(probs, u) for u in (0.0, 0.2499, 0.25, 0.999999)] == [1, 1, 3, 3]
    assert draw(probs, np.nextafter(1.0, 0.0)) == 3  # rounding never reaches an id of probability 0


def test_same_seed_same_stream():
    a, b = Sampler(SamplingConfig(seed=9)), Sampler(SamplingConfig(seed=9))
    probs = np.full(50, 0.02)
    assert [a.sample(probs) for _ in range(20)] == [b.sample(probs) for _ in range(20)]
    assert [a.rng.next_u32() for _ in range(3)] != [PCG32(10).next_u32() for _ in range(3)]


class _Forced:
    """A sampler whose acceptance test answers as told and whose draws record the distribution asked for."""

    def __init__(self, cfg: SamplingConfig, accept: bool):
        self.cfg, self.answer, self.asked = cfg, accept, []

    def distribution(self, logits):
        return distribution(logits, self.cfg)

    def accept(self, p, q):
        return self.answer

    def sample(self, probs):
        self.asked.append(probs)
        return int(np.argmax(probs))


@pytest.mark.parametrize("cfg", [SamplingConfig(1.0), SamplingConfig(0.8, top_k=4), SamplingConfig(1.2, top_p=0.7)])
def test_first_token_follows_the_target_exactly(cfg):
    """P(first emitted = t) = sum_d q(d) [a(d) 1{t=d} + (1 - a(d)) r(t)], a = min(1, p/q), r = the resampling
    distribution accept_sampled uses on a rejection: this must equal p(t) for every t."""
    rng = np.random.default_rng(1)
    for _ in range(10):
        target = (rng.normal(size=(2, 9)) * 2).astype(np.float32)
        q = distribution(rng.normal(size=9) * 2, cfg)
        p = distribution(target[0], cfg)
        out = np.zeros(9)
        for d in np.flatnonzero(q):
            accepted = min(1.0, p[d] / q[d])
            rejecting = _Forced(cfg, accept=False)
            tokens, n = accept_sampled([int(d)], [q], target, rejecting)
            assert n == 0 and len(tokens) == 1
            out[d] += q[d] * accepted
            out += q[d] * (1.0 - accepted) * rejecting.asked[0]
            keeping = _Forced(cfg, accept=True)
            tokens, n = accept_sampled([int(d)], [q], target, keeping)
            assert tokens[0] == d and n == 1
            np.testing.assert_allclose(keeping.asked[0], distribution(target[1], cfg))  # bonus from p_K
        np.testing.assert_allclose(out, p, rtol=0, atol=1e-12)


def test_acceptance_test_keeps_with_probability_min_1_p_over_q():
    s = Sampler(SamplingConfig(seed=3))
    kept = sum(s.accept(0.3, 0.6) for _ in range(20000)) / 20000
    assert abs(kept - 0.5) < 0.015
    assert all(s.accept(0.6, 0.3) for _ in range(100))


def test_accept_sampled_rejects_impossible_drafts():
    sampler = Sampler(SamplingConfig(seed=1))
    p_logits = np.array([[0.0, -1e9, 0.0], [0.0, 0.0, 0.0]], dtype=np.float32)
    q = np.array([0.0, 1.0, 0.0])  # the drafter was sure of token 1, which the target never emits
    tokens, n = accept_sampled([1], [q], p_logits, sampler)
    assert n == 0 and tokens[0] in (0, 2)


def test_residual_is_the_normalised_positive_part():
    p, q = np.array([0.5, 0.3, 0.2]), np.array([0.2, 0.5, 0.3])
    np.testing.assert_allclose(residual(p, q), [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(residual(p, p), p)  # p == q: never reached by a rejection; p is harmless


@pytest.mark.parametrize("size", [7, 50, 20000, 262144])
def test_top_k_ranking_is_the_full_sort_s_prefix(size):
    """`ranked` with top_k against the full lexsort it stands in for, on rows of a few values (ties decide
    most ranks), with +-inf, NaN, and one value filling most of the row as in a drafter's logits."""
    rng = np.random.default_rng(size)
    for trial in range(40 if size < 100000 else 6):
        x = rng.integers(-4, 4, size=size).astype(np.float64) + (rng.random(size) if trial % 2 else 0.0)
        u = rng.random(size)
        if trial % 4 == 1:
            x[u < 0.97] = -7.5  # the drafter's fill for ids outside its candidates
        x[u > 0.995] = np.inf
        x[(u > 0.99) & (u < 0.993)] = -np.inf
        if trial % 5 == 4:
            x[u < 0.001] = np.nan
        full = np.lexsort((np.arange(size), -x))
        for top_k in (1, 3, 64, size - 1):
            assert np.array_equal(ranked(x, top_k), full[:top_k]), (trial, top_k)


@pytest.mark.parametrize("size", [20000, 262144])
def test_top_k_ranking_takes_its_shortcut_on_finite_rows(size):
    """A floor set too high would fall back to the full sort and still be exact, so the test above cannot see
    it: on finite rows (a target's, a drafter's with one fill value) the floor must leave at least top_k and
    only a small share of the ids, and the ranking of those must be the full sort's prefix."""
    rng = np.random.default_rng(size + 1)
    for trial in range(4):
        x = rng.standard_normal(size) * 3.0
        if trial % 2:
            x[rng.random(size) < 0.9] = -11.0  # a drafter: 10 % candidates, the rest one fill value
        full = np.lexsort((np.arange(size), -x))
        for top_k in (1, 64, 1000):
            floor = _top_k_floor(x, top_k)
            taken = int(np.count_nonzero(x >= floor))
            assert top_k <= taken < size // 4, (trial, top_k, taken)
            assert np.array_equal(ranked(x, top_k), full[:top_k]), (trial, top_k)
