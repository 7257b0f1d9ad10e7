"""`calibrate` (runtime/draftlen.py) over a scripted backend on a fake clock: every call advances the clock by
a known cost, so the returned costs are known exactly, and the calls show that each K runs as a steady
series of greedy rounds from position 1 (every draft taken as accepted), rolled back after each K."""

from __future__ import annotations

import pytest

from edge_mtp.errors import EdgeMTPError
from edge_mtp.runtime import draftlen
from edge_mtp.runtime.draftlen import calibrate, calibration_rounds
from edge_mtp.runtime.views import drafter_views
from unit.test_loop_steps import WINDOW, Scripted, nxt


class Clocked(Scripted):
    """The loop tests' scripted pair (target and drafter both predict `nxt`, hidden states are positions) on
    a clock: a verify of T tokens costs verify_ms[T-1] (ms), a drafter step `first_ms` right after a verify
    and `draft_ms` after another step."""

    def __init__(self, verify_ms, first_ms, draft_ms, context=64):
        super().__init__(context=context)
        self.verify_ms, self.first_ms, self.draft_ms = verify_ms, first_ms, draft_ms
        self.now, self.after_verify = 0.0, True

    def verify(self, tokens, start):
        self.now += self.verify_ms[len(tokens) - 1] / 1000.0
        self.after_verify = True
        return super().verify(tokens, start)

    def draft(self, token, carry, position, views):
        self.now += (self.first_ms if self.after_verify else self.draft_ms) / 1000.0
        self.after_verify = False
        return super().draft(token, carry, position, views)


@pytest.fixture
def clock(monkeypatch):
    holder = {}
    monkeypatch.setattr(draftlen.time, "perf_counter", lambda: holder["backend"].now)
    return holder


def test_costs_are_the_medians_of_the_calls(clock):
    backend = clock["backend"] = Clocked([10.0, 12.5, 11.0, 14.0, 15.0], first_ms=3.0, draft_ms=2.0)
    costs = calibrate(backend, 4, token=7)
    # verify of 3 tokens (11 ms) reads as 12.5: a verify of more tokens never costs less than one of fewer
    assert costs.verify_ms == (10.0, 12.5, 12.5, 14.0, 15.0)
    assert (costs.first_draft_ms, costs.draft_ms, costs.calibrated) == (3.0, 2.0, True)


def test_each_k_runs_steady_rounds_from_position_one(clock):
    k_max, reps, warmup = 2, 2, 1
    backend = clock["backend"] = Clocked([1.0, 2.0, 3.0], first_ms=0.5, draft_ms=0.25)
    calibrate(backend, k_max, token=7, reps=reps, warmup=warmup)
    assert backend.calls[0] == ("prefill", [7])
    rounds = calibration_rounds(k_max, backend.context)
    assert rounds == 4
    calls = backend.calls[1:]
    for _ in range(warmup + reps):
        for k in range(k_max + 1):
            last, q, prev, carry = nxt(7), 1, (0, 0), 0.0  # the prefill's next token and hidden state
            for _ in range(rounds):
                views = drafter_views(*prev, q + 1, WINDOW)
                token, drafts = last, []
                for _ in range(k):
                    assert calls.pop(0) == ("draft", token, carry, q, views)  # chained from the round's carry
                    token = nxt(token)
                    drafts.append(token)
                assert calls.pop(0) == ("verify", [last] + drafts, q)
                last, carry, prev, q = nxt(drafts[-1] if drafts else last), float(q + k), (q, q + k), q + k + 1
            assert calls.pop(0) == ("rollback", 1)
    assert calls == []


def test_short_contexts_run_fewer_rounds_or_refuse():
    assert [calibration_rounds(3, c) for c in (9, 12, 13, 17, 1000)] == [2, 2, 3, 4, 4]
    with pytest.raises(EdgeMTPError, match="calibrating K up to 3 needs a context of 9, not 8"):
        calibration_rounds(3, 8)
