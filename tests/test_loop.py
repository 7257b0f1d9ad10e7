"""The greedy speculative loop against transformers' `generate`: tokens, drafts and acceptance per round."""

from __future__ import annotations

import pytest
import torch

from edge_mtp.runtime import LoopConfig, generate
from edge_mtp.runtime.torch_backend import open_torch_backend
from hf_oracle import hf_generate

NEW_TOKENS = 40


def _random_prompt(vocab: int, length: int, seed: int) -> list[int]:
    return torch.randint(107, vocab, (length,), generator=torch.Generator().manual_seed(seed)).tolist()


def _prompts(pairs, preset) -> list[list[int]]:
    """Six memorised prompts (high acceptance), one fresh short one, one long enough to wrap the window."""
    memorised = pairs.prompts(preset)[:6]
    return memorised + [_random_prompt(4096, 5, 1), _random_prompt(4096, 40, 2)]


def _ours(pairs, preset, prompt, k, **kw):
    backend, _, _ = open_torch_backend(*pairs.dirs(preset), context=len(prompt) + NEW_TOKENS + k + 1,
                                       prefill_chunk=kw.pop("prefill_chunk", None))
    return generate(backend, prompt, LoopConfig(draft_len=k, max_new_tokens=NEW_TOKENS, **kw))


def _drafting_rounds(gen):
    return [r for r in gen.rounds if r.drafts]


def _check_against_hf(pairs, preset, k, prompts) -> list[int]:
    hf_target, hf_drafter = pairs.hf(preset)
    counts = []
    for prompt in prompts:
        gen = _ours(pairs, preset, prompt, k)
        tokens, rounds = hf_generate(hf_target, prompt, NEW_TOKENS, hf_drafter if k else None, k)
        assert gen.tokens == tokens, f"tokens differ from transformers (K={k}, prompt {prompt[:4]}...)"
        if k:
            ours = _drafting_rounds(gen)
            assert [r.drafts for r in ours] == rounds.drafts, f"drafts differ (K={k})"
            assert [r.accepted for r in ours] == rounds.accepted, f"acceptance differs (K={k})"
            counts += [r.accepted for r in ours]
    return counts


def test_plain_decoding_equals_transformers_generate(pairs, preset):
    _check_against_hf(pairs, preset, 0, _prompts(pairs, preset))


def test_k4_equals_transformers_assisted_round_by_round(pairs, preset):
    counts = _check_against_hf(pairs, preset, 4, _prompts(pairs, preset))
    assert set(counts) == {0, 1, 2, 3, 4}, f"acceptance counts seen: {sorted(set(counts))}"


@pytest.mark.slow
@pytest.mark.parametrize("k", [1, 2, 3])
def test_k1_to_3_equal_transformers_assisted_round_by_round(pairs, preset, k):
    counts = _check_against_hf(pairs, preset, k, _prompts(pairs, preset))
    assert set(counts) == set(range(k + 1)), f"acceptance counts seen: {sorted(set(counts))}"


def test_speculation_changes_no_token_and_saves_target_passes(pairs):
    prompt = pairs.prompts("tiny-e2b")[0]
    plain = _ours(pairs, "tiny-e2b", prompt, 0)
    spec = _ours(pairs, "tiny-e2b", prompt, 4)
    assert spec.tokens == plain.tokens
    assert len(spec.rounds) < len(plain.rounds) / 2  # the distilled drafter is right most of the time


def test_clean_view_keeps_tokens_but_changes_drafts(pairs):
    """The stale-slot (hf) view matters for drafts only; greedy output is the target's either way."""
    changed = 0
    for prompt in _prompts(pairs, "tiny-e2b"):
        hf_view = _ours(pairs, "tiny-e2b", prompt, 4)
        clean = _ours(pairs, "tiny-e2b", prompt, 4, kv_view="clean")
        assert clean.tokens == hf_view.tokens
        changed += [r.drafts for r in clean.rounds] != [r.drafts for r in hf_view.rounds]
    assert changed > 0


def test_chunked_prefill_gives_the_same_rounds(pairs):
    prompt = _random_prompt(4096, 40, 2)
    whole = _ours(pairs, "tiny-e2b", prompt, 3)
    chunked = _ours(pairs, "tiny-e2b", prompt, 3, prefill_chunk=8)
    assert [(r.drafts, r.accepted, r.emitted) for r in chunked.rounds] == \
           [(r.drafts, r.accepted, r.emitted) for r in whole.rounds]


def test_context_limit_stops_with_reason(pairs):
    prompt = pairs.prompts("tiny-e2b")[0]
    full = _ours(pairs, "tiny-e2b", prompt, 4)
    backend, _, _ = open_torch_backend(*pairs.dirs("tiny-e2b"), context=len(prompt) + 10)
    short = generate(backend, prompt, LoopConfig(draft_len=4, max_new_tokens=NEW_TOKENS))
    assert short.stop == "context"
    assert len(short.tokens) == 11  # every slot used, plus the token predicted from the last one
    assert short.tokens == full.tokens[:11]


def _demo_prompts(pairs) -> list[list[int]]:
    """Two held-out prompts of every category of the trained demo pair (code, rewrite, chat, prose, C)."""
    return [p for ps in pairs.demo_prompts().values() for p in ps[:2]]


def test_trained_demo_pair_equals_transformers_plain_and_k3(pairs):
    """The committed pair (real weights, real text): plain decoding and K = 3 assisted generation
    round by round, drafts and acceptance included."""
    prompts = _demo_prompts(pairs)
    _check_against_hf(pairs, "demo", 0, prompts)
    counts = _check_against_hf(pairs, "demo", 3, prompts)
    assert set(counts) == {0, 1, 2, 3}, f"acceptance counts seen: {sorted(set(counts))}"
