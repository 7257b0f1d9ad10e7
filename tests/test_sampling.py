"""Seeded sampling end to end: speculative sampling reproduces the target's distribution (chi-square) on a
toy Markov pair and on a real tiny pair; the same seed gives the same trace. The random stream and the
distribution transforms themselves are unit-tested in tests/unit/test_sampler.py."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from edge_mtp.runtime import LoopConfig, SamplingConfig, generate, trace_lines
from edge_mtp.runtime.backend import TargetStep
from edge_mtp.runtime.sampling import distribution
from edge_mtp.runtime.torch_backend import open_torch_backend


class MarkovPair:
    """A backend whose target and drafter are first-order Markov chains over a tiny vocabulary.

    The exact distribution of any generated sequence is then known in closed form, so speculative
    sampling can be tested without a neural network in the way."""

    name, model_id, sliding_window, stop_ids = "markov", "markov", 4, ()

    def __init__(self, vocab: int = 3, seed: int = 0, context: int = 64):
        rng = np.random.default_rng(seed)
        self.p_logits = rng.normal(size=(vocab, vocab)) * 1.5
        self.q_logits = self.p_logits + rng.normal(size=(vocab, vocab))  # a decent but imperfect drafter
        self.context, self.vocab = context, vocab

    def _step(self, tokens) -> TargetStep:
        return TargetStep(self.p_logits[list(tokens)].astype(np.float32), np.eye(self.vocab)[list(tokens)])

    def prefill(self, tokens):
        return self._step(tokens[-1:])

    def verify(self, tokens, start):
        return self._step(tokens)

    def rollback(self, length):
        pass

    def draft(self, token, carry, position, views):
        return self.q_logits[token].astype(np.float32), carry

    def exact_joint(self, first: int, steps: int) -> dict[tuple, float]:
        """P(t1..t_steps | last prompt token) under the target chain."""
        probs = [distribution(row, SamplingConfig()) for row in self.p_logits]
        joint = {(): 1.0}
        for _ in range(steps):
            joint = {seq + (t,): pr * probs[seq[-1] if seq else first][t] for seq, pr in joint.items()
                     for t in range(self.vocab)}
        return joint


def _chi_square_p(samples: list[tuple], expected: dict[tuple, float]) -> float:
    counts = Counter(samples)
    keys = sorted(expected)
    observed = np.array([counts[k] for k in keys], dtype=float)
    exp = np.array([expected[k] for k in keys]) * len(samples)
    return chisquare(observed, exp / exp.sum() * observed.sum()).pvalue


RUNS = 20000


def _markov_samples(pair: MarkovPair, k: int, steps: int) -> list[tuple]:
    out = []
    for seed in range(RUNS):
        cfg = LoopConfig(draft_len=k, max_new_tokens=steps, sampling=SamplingConfig(seed=seed))
        out.append(tuple(generate(pair, [0], cfg).tokens))
    return out


def test_speculative_sampling_preserves_the_target_distribution():
    pair = MarkovPair()
    samples = _markov_samples(pair, k=3, steps=4)  # prefill token, then K=2 and shorter rounds
    assert _chi_square_p(samples, pair.exact_joint(0, 4)) > 1e-3


def test_the_chi_square_check_catches_argmax_drafts(monkeypatch):
    """Power check: transformers-style argmax drafts with min(1, p/q) acceptance are biased and fail."""
    import edge_mtp.runtime.loop as loop

    def argmax_drafts(backend, token, carry, position, views, k, sampler):
        drafts, dists = [], []
        for _ in range(k):
            logits, carry = backend.draft(token, carry, position, views)
            dists.append(sampler.distribution(logits))
            token = int(np.argmax(logits))
            drafts.append(token)
        return drafts, dists

    monkeypatch.setattr(loop, "draft_tokens", argmax_drafts)
    pair = MarkovPair()
    assert _chi_square_p(_markov_samples(pair, k=3, steps=4), pair.exact_joint(0, 4)) < 1e-6


def _sampled_trace(pairs, seed: int, k: int = 4) -> list[dict]:
    prompt = pairs.prompts("tiny-e2b")[0]
    backend, _, _ = open_torch_backend(*pairs.dirs("tiny-e2b"), context=len(prompt) + 30)
    cfg = LoopConfig(draft_len=k, max_new_tokens=24, sampling=SamplingConfig(0.8, 40, 0.95, seed))
    lines = trace_lines(generate(backend, prompt, cfg), cfg, backend.name, backend.model_id)
    return [{k: v for k, v in line.items() if k != "ms"} for line in lines]


def test_same_seed_same_trace_other_seed_other_tokens(pairs):
    first, again, other = _sampled_trace(pairs, 7), _sampled_trace(pairs, 7), _sampled_trace(pairs, 8)
    assert first == again
    assert first[-1]["tokens"] != other[-1]["tokens"]
    assert first[0]["sampling"] == {"mode": "sample", "temperature": 0.8, "top_k": 40, "top_p": 0.95, "seed": 7}


@pytest.mark.slow
def test_real_pair_second_token_follows_the_target(pairs):
    """tiny-e2b, K=4: the 2nd sampled token, given the most common 1st one, follows the transformers target."""
    prompt = pairs.prompts("tiny-e2b")[0]
    cfg_s = SamplingConfig(temperature=1.0, top_k=6)
    backend, _, _ = open_torch_backend(*pairs.dirs("tiny-e2b"), context=len(prompt) + 8)
    runs = [generate(backend, prompt, LoopConfig(4, 2, SamplingConfig(1.0, 6, 1.0, s))).tokens for s in range(2500)]
    first = Counter(t[0] for t in runs).most_common(1)[0][0]
    seconds = [(t[1],) for t in runs if t[0] == first]
    hf_target, _ = pairs.hf("tiny-e2b")
    with torch.no_grad():
        logits = hf_target(torch.tensor([prompt + [first]])).logits[0, -1].numpy()
    p = distribution(logits, cfg_s)
    expected = {(i,): float(p[i]) for i in np.flatnonzero(p)}
    assert len(seconds) > 300
    assert _chi_square_p(seconds, expected) > 1e-3
