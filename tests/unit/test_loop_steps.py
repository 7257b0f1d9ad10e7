"""The loop's pieces (runtime/loop.py, docs/loop.md): greedy acceptance, clipping, and `generate` over a
scripted backend whose target is a known function of the last token, so plain greedy decoding is the
oracle for the output and every round's drafts, acceptance, positions, rollbacks and drafter views are
known in advance."""

from __future__ import annotations

import numpy as np
import pytest

from edge_mtp.runtime.backend import TargetStep
from edge_mtp.runtime.loop import TOP_LOGITS, LoopConfig, accept_greedy, clip, generate, top_logits
from edge_mtp.runtime.views import drafter_views

VOCAB, WINDOW = 50, 4


def test_accept_greedy_counts_the_matching_prefix():
    logits = np.eye(VOCAB, dtype=np.float32)[[5, 6, 7, 8]]  # target picks 5, 6, 7, then the bonus 8
    assert accept_greedy([5, 6, 7], logits) == ([5, 6, 7, 8], 3)
    assert accept_greedy([5, 9, 7], logits) == ([5, 6, 7, 8], 1)  # a later match after a miss does not count
    assert accept_greedy([4, 6, 7], logits) == ([5, 6, 7, 8], 0)
    assert accept_greedy([], logits[:1]) == ([5], 0)


def test_clip_to_budget_and_first_stop_id():
    assert clip([3, 4, 5, 6], 10, (1,)) == [3, 4, 5, 6]
    assert clip([3, 4, 5, 6], 2, (1,)) == [3, 4]
    assert clip([3, 1, 5, 1], 10, (1, 106)) == [3, 1]
    assert clip([3, 106, 5], 1, (106,)) == [3]


def nxt(token: int) -> int:
    """The scripted target: the next token depends on the last one only."""
    return (7 * token + 3) % VOCAB


class Scripted:
    """Target = `nxt`; the drafter is right except at the (round, step) pairs in `wrong`. Hidden states
    and carries are the absolute position, so the test sees which position a carry came from."""

    name, model_id, sliding_window = "scripted", "scripted", WINDOW

    def __init__(self, wrong: set[tuple[int, int]] = frozenset(), stop_ids=(), context: int = 256):
        self.wrong, self.stop_ids, self.context = wrong, tuple(stop_ids), context
        self.calls: list[tuple] = []
        self.round, self.step = 0, 0

    def _out(self, tokens, start) -> TargetStep:
        logits = np.eye(VOCAB, dtype=np.float32)[[nxt(t) for t in tokens]]
        hidden = np.arange(start, start + len(tokens), dtype=np.float32)[:, None]
        return TargetStep(logits, hidden)

    def prefill(self, tokens):
        self.calls.append(("prefill", list(tokens)))
        out = self._out(tokens, 0)
        return TargetStep(out.logits[-1:], out.hidden[-1:])

    def verify(self, tokens, start):
        self.calls.append(("verify", list(tokens), start))
        self.round, self.step = self.round + 1, 0
        return self._out(tokens, start)

    def rollback(self, length):
        self.calls.append(("rollback", length))

    def draft(self, token, carry, position, views):
        self.calls.append(("draft", token, float(carry[0]), position, views))
        self.step += 1
        guess = nxt(token) if (self.round + 1, self.step) not in self.wrong else (nxt(token) + 1) % VOCAB
        return np.eye(VOCAB, dtype=np.float32)[guess], carry


def _greedy(prompt, n, stop_ids=()):
    out, t = [], prompt[-1]
    while len(out) < n:
        t = nxt(t)
        out.append(t)
        if t in stop_ids:
            break
    return out


@pytest.mark.parametrize("k", [0, 1, 2, 4])
def test_output_is_plain_greedy_whatever_the_drafter_does(k):
    prompt = [11, 12, 13]
    wrong = {(1, 1), (2, 3), (3, 2), (5, 1), (5, 2)}
    gen = generate(Scripted(wrong), prompt, LoopConfig(draft_len=k, max_new_tokens=23))
    assert gen.tokens == _greedy(prompt, 23) and gen.stop == "max_new_tokens"


def test_rounds_positions_rollbacks_and_views():
    prompt, k, new = [11, 12, 13, 14, 15, 16], 3, 14
    wrong = {(1, 2), (2, 1), (4, 3)}  # round 1 keeps 1 draft, round 2 none, round 3 all, round 4 two
    backend = Scripted(wrong)
    gen = generate(backend, prompt, LoopConfig(draft_len=k, max_new_tokens=new))
    r0 = gen.rounds[0]  # round 0 = the prefill: no drafts, one token
    assert (r0.index, r0.position, r0.drafts, r0.accepted, r0.emitted) == (0, 5, [], 0, [nxt(16)])
    assert [r.accepted for r in gen.rounds[1:5]] == [1, 0, 3, 2]
    seq, prev = list(prompt) + r0.emitted, (0, len(prompt) - 1)
    verifies = [c for c in backend.calls if c[0] == "verify"]
    rollbacks = [c[1] for c in backend.calls if c[0] == "rollback"]
    drafts = [c for c in backend.calls if c[0] == "draft"]
    carry = float(len(prompt) - 1)  # the prefill's last position
    for i, r in enumerate(gen.rounds[1:]):
        q = len(seq) - 1
        budget = len(prompt) + new - len(seq)
        assert r.position == q and len(r.drafts) == min(k, budget - 1)
        assert verifies[i] == ("verify", [seq[-1]] + r.drafts, q)  # [last, d1..dK] at q..q+K
        assert rollbacks[i] == q + r.accepted + 1  # valid length = everything up to the bonus token's input
        assert len(r.emitted) == r.accepted + 1
        mine = drafts[: len(r.drafts)]
        drafts = drafts[len(r.drafts):]
        for step, call in enumerate(mine):
            assert call[3] == q  # constant query position
            assert call[4] == drafter_views(*prev, len(seq), WINDOW, "hf")
            if step == 0:
                assert call[1] == seq[-1] and call[2] == carry
        carry = float(q + r.accepted)  # the target's hidden at the position that predicted the bonus
        prev = (q, q + len(r.drafts))
        seq += r.emitted
    assert seq[len(prompt):] == gen.tokens == _greedy(prompt, new)


def test_stop_id_ends_the_round_and_the_run():
    prompt = [11]
    chain = _greedy(prompt, 20)
    stop = chain[2]  # inside round 1's accepted drafts: the round is cut after it
    gen = generate(Scripted(stop_ids=(stop,)), prompt, LoopConfig(draft_len=4, max_new_tokens=20))
    assert gen.tokens == chain[:3] == _greedy(prompt, 20, (stop,)) and gen.stop == "eos"
    last = gen.rounds[-1]
    assert len(gen.rounds) == 2 and last.emitted == chain[1:3] and last.accepted == 1


def test_context_end_stops_with_reason():
    gen = generate(Scripted(context=10), [11, 12, 13], LoopConfig(draft_len=4, max_new_tokens=50))
    assert gen.stop == "context" and len(gen.tokens) == 8  # 10 slots, plus the token predicted from the last


def test_summary_acceptance_per_draft_slot():
    """Slot k's rate = share of the rounds that offered a k-th draft in which it was kept (so it includes
    the earlier slots' acceptance); the prefill is round 0 and is not in the per-round mean."""
    prompt, k = [11, 12], 4
    wrong = {(1, 3), (2, 1), (3, 5)}  # accepted: 2, 0, 4, 4, ...
    gen = generate(Scripted(wrong), prompt, LoopConfig(draft_len=k, max_new_tokens=19))
    accepted = [r.accepted for r in gen.rounds[1:]]
    offered = [len(r.drafts) for r in gen.rounds[1:]]
    assert accepted[:3] == [2, 0, 4] and offered[-1] < k  # the budget shortens the last round
    s = gen.summary(k)
    for slot in range(k):
        rounds = [a for a, o in zip(accepted, offered) if o > slot]
        assert s["accepted_per_position"][slot] == sum(a > slot for a in rounds) / len(rounds)
    assert s["rounds"] == len(gen.rounds) and s["drafted"] == sum(offered) and s["accepted"] == sum(accepted)
    assert s["mean_emitted_per_round"] == (len(gen.tokens) - 1) / (len(gen.rounds) - 1)


def test_top_logits_is_the_stable_sort_order_with_ties_infinities_and_nan():
    """The round's top list against numpy's stable sort of -row (the order the C core follows too), on rows
    made of few values so that ties, +-inf and NaN decide most ranks; every tenth row is 9000-20000 long and
    float32, so several ids share a block of the ranking's floor, compared as float32."""
    rng = np.random.default_rng(0)
    for trial in range(2000):
        size = int(rng.integers(9000, 20000)) if trial % 10 == 0 else int(rng.integers(1, 30))
        row = rng.integers(-3, 3, size=size).astype(np.float32) + (rng.random(size, np.float32) if trial % 20 == 10 else 0)
        u = rng.random(row.size)
        row[u < 0.15] = -np.inf
        row[(u > 0.15) & (u < 0.2)] = np.inf
        if trial % 3 == 0:
            row[u > 0.93] = np.nan
        want = np.argsort(-row, kind="stable")[:TOP_LOGITS]
        got = top_logits(row)
        assert [i for i, _ in got] == want.tolist(), (row, got)
        assert np.array_equal(np.array([v for _, v in got], np.float32), row[want], equal_nan=True)
