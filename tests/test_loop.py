"""The greedy speculative loop against transformers' `generate`: tokens, drafts and acceptance per round;
`--draft-len auto`: the policy's decisions on hand-computed cases, and its output against plain decoding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import LOGIT_TOL
from hf_oracle import hf_generate

from edge_mtp.runtime import LoopConfig, SamplingConfig, generate
from edge_mtp.runtime.draftlen import (
    AutoDraft,
    DraftCosts,
    DraftLenState,
    best_k,
    can_pay,
    estimates,
)
from edge_mtp.runtime.torch_backend import open_torch_backend

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


# ---- `--draft-len auto` (runtime/draftlen.py) --------------------------------------------------------

CHEAP = DraftCosts(0.1, 0.1, (1.0, 1.1, 1.2, 1.3, 1.4))  # drafting pays from ~25% acceptance per slot
NEVER = DraftCosts(1.0, 1.0, (2.0, 4.0, 6.0, 8.0, 10.0))  # an always-right drafter only ties with plain decoding


def _auto(pairs, prompt, costs, new=NEW_TOKENS, **kw):
    backend, _, _ = open_torch_backend(*pairs.dirs("tiny-e2b"), context=len(prompt) + new + 6)
    return generate(backend, prompt, LoopConfig(draft_len=costs.max_draft_len, max_new_tokens=new,
                                                auto=AutoDraft(costs, **kw.pop("policy", {})), **kw))


def test_policy_decisions_by_hand():
    # c_draft 1, c_verify(1..3) = 2, 3, 4: K=1 gives 2 tokens for 4 ms at best, K=2 3 for 6: never better than 1/2
    never = AutoDraft(DraftCosts(1.0, 1.0, (2.0, 3.0, 4.0)))
    assert not can_pay(never.costs, 2)
    s = DraftLenState(never)
    for _ in range(16):
        s.record(2, 2)
    assert s.decide(2).k == 0 and not s.decide(2).probe and s.plain_rounds == 0
    # c_draft 0.5, c_verify 2, 2.5, 3. No data: a = 0.5, 0.5; scores K0 1/2, K1 1.5/3 = 1/2 (tie: K0), K2 1.75/4
    p = AutoDraft(DraftCosts(0.5, 0.5, (2.0, 2.5, 3.0)))
    assert estimates(p, [0, 0], [0, 0]) == [0.5, 0.5] and best_k([0.5, 0.5], p.costs, 2) == 0
    s = DraftLenState(p)
    d = s.decide(2)
    assert (d.k, d.probe, s.plain_rounds) == (0, True, 1)  # probe first: slot 1 untested
    # three accepted tests of slot 1 (prior weight 1): a1 = (3 + 0.5) / (3 + 1) = 0.875, a2 = (0 + 0.875) / 1;
    # K1 1.875/3 = 0.625, K2 (1.875 + 0.765625)/4 = 0.66 -> K = 2, but only 1 fits at the end of the budget
    for _ in range(3):
        s.record_probe(True)
    assert s.decide(2).rates == [0.875, 0.875] and s.decide(2).k == 2 and s.decide(1).k == 1
    # a drafting round with 2 drafts, first accepted, second rejected: slot 1 1 more accepted, slot 2 0 of 1
    s.record(2, 1)
    assert s.counts() == ([4, 1], [4, 0])
    # one rejected probe: a1 = (0 + 0.5) / 2 = 0.25 = a2; K1 1.25/3 < 1/2 -> plain; the next probe
    # once 1 probe * 0.5 ms <= 0.005 * rounds * 2 ms, i.e. at the 50th plain round; no lookahead after a rejection
    s = DraftLenState(p)
    s.decide(2)
    s.record_probe(False)
    probes = [r for r in range(2, 80) if s.decide(2).probe]
    assert probes[0] == 50
    # lookahead: slot 1 window [0, 0, 1] -> a1 = (1 + 0.5)/(3 + 1) = 0.375: plain, and the budget is spent, but four
    # more accepts would give (5 + 0.5)/(7 + 1) = 0.6875 and K = 1 (score 1.6875/3 > 1/2): so probe; not after [1, 0]
    one = AutoDraft(DraftCosts(1.0, 1.0, (2.0, 2.0)))
    for window, probe in (([0, 0, 1], True), ([1, 0], False)):
        s = DraftLenState(one)
        s.outcomes[0].extend(window)
        s.probes = 10
        d = s.decide(1)
        assert d.k == 0 and d.probe is probe and d.rates == [estimates(one, [len(window)], [sum(window)])[0]]
    # cheap drafts (0.1, verify 1, 1.2, 1.2): the prior alone would draft 2 (1.75/1.4 > 1.5/1.3 > 1), but slot 1 is
    # tested by a probe first; one accepted probe then gives a = 0.75, 0.75 and K = 2
    cheap = AutoDraft(DraftCosts(0.1, 0.1, (1.0, 1.2, 1.2)))
    assert best_k([0.5, 0.5], cheap.costs, 2) == 2
    s = DraftLenState(cheap)
    d = s.decide(2)
    assert (d.k, d.probe) == (0, True)
    s.record_probe(True)
    assert s.decide(2).k == 2
    # a cold first step: c_first 1, c_draft 0.2, verify 2, 2.9, 3 -> cost(1) = 3.9, cost(2) = 4.2; at a = 0.9, 0.9
    # K1 1.9/3.9 < 1/2 (it would be 1.9/3.1 with c_first = 0.2) and K2 2.71/4.2 > 1/2
    cold = DraftCosts(1.0, 0.2, (2.0, 2.9, 3.0))
    assert [cold.round_ms(k) for k in range(3)] == [2.0, 3.9, 1.0 + 0.2 + 3.0]
    assert best_k([0.9, 0.9], cold, 1) == 0 and best_k([0.9, 0.9], cold, 2) == 2
    assert best_k([0.9, 0.9], DraftCosts(0.2, 0.2, (2.0, 2.9, 3.0)), 1) == 1
    # the window forgets: 16 rejections then 16 accepts of slot 1 leave only the accepts
    s = DraftLenState(p)
    for outcome in [False] * 16 + [True] * 16:
        s.record_probe(outcome)
    assert s.counts() == ([16, 0], [16, 0]) and s.decide(2).rates[0] == (16 + 0.5) / 17


def test_auto_greedy_output_is_plain_greedy(pairs):
    """Only the drafts change: tokens equal K=0's whatever K the policy picks, and it does pick several."""
    seen, probes = set(), 0
    for prompt in _prompts(pairs, "tiny-e2b"):
        plain = _ours(pairs, "tiny-e2b", prompt, 0)
        auto = _auto(pairs, prompt, CHEAP)
        assert auto.tokens == plain.tokens
        seen |= {len(r.drafts) for r in auto.rounds[1:]}
        probes += auto.probes[0]
        assert all("rates" in r.policy for r in auto.rounds[1:])
    assert {0, 4} <= seen and len(seen) >= 3 and probes > 0, (seen, probes)


def test_auto_never_drafts_when_it_cannot_pay(pairs):
    """With costs at which even a perfect drafter only ties, auto is plain decoding: no drafter call at all,
    so greedy and seeded sampling give K=0's rounds and tokens (the main random stream is untouched)."""
    prompt = pairs.prompts("tiny-e2b")[0]
    for sampling in (None, SamplingConfig(0.8, 0, 1.0, 7)):
        plain = _ours(pairs, "tiny-e2b", prompt, 0, sampling=sampling)
        auto = _auto(pairs, prompt, NEVER, sampling=sampling)
        assert [r.emitted for r in auto.rounds] == [r.emitted for r in plain.rounds]
        assert auto.probes == (0, 0) and all(not r.drafts and "probe" not in r.policy for r in auto.rounds[1:])


def test_sampling_probes_use_their_own_stream(pairs):
    """Probes in a generation that never drafts leave the sampled tokens of K=0 unchanged."""
    prompt = _random_prompt(4096, 5, 1)
    sampling = SamplingConfig(0.8, 0, 1.0, 7)
    plain = _ours(pairs, "tiny-e2b", prompt, 0, sampling=sampling)
    auto = _auto(pairs, prompt, CHEAP, sampling=sampling, policy={"prior": 0.0, "probe_budget": 0.05})
    assert auto.probes[0] >= 2 and all(not r.drafts for r in auto.rounds)
    assert auto.tokens == plain.tokens


def test_auto_trace_header_rounds_and_diff(pairs):
    """The trace says `draft_len: auto` with the policy and costs; rounds carry the estimates and probes;
    `trace diff` compares those exactly (a cost or a last-bit change of an estimate is a mismatch)."""
    import json

    from edge_mtp.runtime import trace_lines
    from edge_mtp.runtime.tracediff import diff_traces

    prompt = pairs.prompts("tiny-e2b")[0]
    gen = _auto(pairs, prompt, CHEAP)
    cfg = LoopConfig(draft_len=4, max_new_tokens=NEW_TOKENS, auto=AutoDraft(CHEAP))
    lines = json.loads(json.dumps(trace_lines(gen, cfg, "python-torch", "m")))
    head, rounds, summary = lines[0], lines[1:-1], lines[-1]
    assert head["draft_len"] == "auto" and head["draft_policy"]["verify_ms"] == list(CHEAP.verify_ms)
    assert "rates" not in rounds[0] and all(len(r["rates"]) == 4 for r in rounds[1:])
    assert summary["probes"] == sum("probe" in r for r in rounds) and len(summary["accepted_per_position"]) == 4
    assert diff_traces(lines, json.loads(json.dumps(lines)), LOGIT_TOL).ok
    other = json.loads(json.dumps(lines))
    other[0]["draft_policy"]["first_draft_ms"] = 0.2
    assert [d.key for d in diff_traces(lines, other, LOGIT_TOL).differences] == ["draft_policy"]
    other = json.loads(json.dumps(lines))
    other[3]["rates"][1] = float(np.nextafter(other[3]["rates"][1], 1.0))
    assert [(d.where, d.key) for d in diff_traces(lines, other, LOGIT_TOL).differences] == [("round 2", "rates")]


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
