"""The paired statistic `bench` reports for `--draft-len auto` (bench/stats.py): hand-made generations whose
decode tok/s are known, so the median of the paired ratios is known too."""

from __future__ import annotations

import pytest

from edge_mtp.bench.measure import Sample
from edge_mtp.bench.stats import generation_tok_s, paired_ratio


def _gen(category: str, prompt_tokens: int, tokens: int, round_s: list[float]) -> Sample:
    rounds = [{"drafts": 0, "accepted": 0, "emitted": 1, "wall_s": s} for s in round_s]
    return Sample(category, 0, prompt_tokens, tokens, 0.01, rounds)


def test_paired_ratio_is_the_median_of_per_generation_ratios_and_ignores_one_slow_pair():
    base = [_gen("a", 5, 11, [0.01] * 10), _gen("a", 7, 11, [0.01] * 10), _gen("b", 5, 11, [0.01] * 10)]
    # 100 tok/s each; the other K: 95, 102, and one generation 10x slower (a burst of load)
    other = [_gen("a", 5, 11, [0.01 / 0.95] * 10), _gen("a", 7, 11, [0.01 / 1.02] * 10), _gen("b", 5, 11, [0.1] * 10)]
    assert generation_tok_s(base[0]) == pytest.approx(100.0)
    assert paired_ratio(other, base) == pytest.approx(0.95)
    totals = sum(s.tokens - 1 for s in other) / sum(r["wall_s"] for s in other for r in s.rounds)
    assert totals / 100.0 == pytest.approx(3 / (1 / 0.95 + 1 / 1.02 + 10), rel=1e-12)  # the total moves: 0.25


def test_generations_without_decode_rounds_are_left_out_and_unpaired_lists_are_an_error():
    base = [_gen("a", 5, 1, []), _gen("a", 6, 3, [0.5, 0.5])]
    other = [_gen("a", 5, 3, [0.5, 0.5]), _gen("a", 6, 3, [0.25, 0.25])]
    assert paired_ratio(other, base) == pytest.approx(2.0)
    assert paired_ratio(other[:1], base[:1]) is None
    with pytest.raises(ValueError, match="unpaired generations: a/6 against a/5"):
        paired_ratio(other[1:], base[:1])
