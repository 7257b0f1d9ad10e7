"""The speculative decoding loop: draft -> verify -> accept -> roll back, as a few free functions.

Greedy mode is token-exact with `transformers` `generate(assistant_model=drafter)` (docs/loop.md#a-decoding-round):
round 0 is the prefill (no drafts); each later round drafts K = min(K_max, budget - 1) tokens from the
last token at a constant query position, verifies [last, d1..dK] in one target pass, keeps the
longest matching prefix plus the target's own next token ("bonus"), and continues from the hidden state
at the bonus position. The stop ids cut a round's tokens after the first one.

Sampling mode is true speculative sampling (Leviathan et al. 2023, "Fast Inference from Transformers
via Speculative Decoding"; Chen et al. 2023): drafts are *sampled* from the drafter's distribution q,
kept with probability min(1, p/q), and the first rejected one is replaced by a sample of
norm(max(p - q, 0)); so the output follows the target's distribution p exactly. transformers' own
sampling path proposes argmax drafts but accepts as if they were sampled from q, which biases its output
toward the drafter's choices; we do not reproduce that (docs/loop.md#speculative-sampling).

`--draft-len auto` (draftlen.py) picks K per round from the call costs and the running acceptance;
only the drafts change, so greedy output is that of plain decoding. After a round that drafted nothing
the hf drafter view equals the clean one (views.py). Its trace lines add `rates` (the estimates the
round's K came from) and, for a probe, `probe: {draft, accepted}`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from edge_mtp.errors import EdgeMTPError
from edge_mtp.runtime.backend import Backend
from edge_mtp.runtime.draftlen import PROBE_STREAM, AutoDraft, DraftLenState
from edge_mtp.runtime.sampling import PCG32, Sampler, SamplingConfig, draw, ranked, residual
from edge_mtp.runtime.views import drafter_views

TOP_LOGITS = 5  # target top-k recorded per round in the trace (for tolerance diffs between backends)


@dataclass(frozen=True)
class LoopConfig:
    draft_len: int = 4  # K; 0 = plain decoding; with `auto`: the most drafts a round may take
    max_new_tokens: int = 64
    sampling: SamplingConfig | None = None  # None = greedy
    kv_view: str = "hf"
    auto: AutoDraft | None = None  # `--draft-len auto`: K chosen per round (draftlen.py)


@dataclass
class Round:
    index: int
    position: int  # position of the last known token when the round starts
    drafts: list[int]
    target: list[int]  # the target's choice at each verified position
    accepted: int
    emitted: list[int]
    top_logits: list[list]
    ms: dict[str, float]
    policy: dict | None = None  # auto rounds: {"rates": [...]} and, if one ran, {"probe": {...}}

    def as_trace(self) -> dict:
        return {"type": "round", "index": self.index, "position": self.position, "drafts": self.drafts,
                "target": self.target, "accepted": self.accepted, "emitted": self.emitted,
                "top_logits": self.top_logits, **(self.policy or {}), "ms": self.ms}


@dataclass
class Generation:
    prompt: list[int]
    tokens: list[int] = field(default_factory=list)
    rounds: list[Round] = field(default_factory=list)
    stop: str = ""
    probes: tuple[int, int] | None = None  # auto: (probes run, probes accepted)

    def summary(self, draft_len: int) -> dict:
        drafting = [r for r in self.rounds if r.drafts]
        per_slot = []
        for k in range(draft_len):
            offered = [r for r in drafting if len(r.drafts) > k]
            per_slot.append(sum(r.accepted > k for r in offered) / len(offered) if offered else 0.0)
        decode_rounds = self.rounds[1:]
        return {
            "type": "summary", "tokens": self.tokens, "rounds": len(self.rounds),
            "drafted": sum(len(r.drafts) for r in drafting), "accepted": sum(r.accepted for r in drafting),
            "accepted_per_position": per_slot,
            "mean_emitted_per_round": (sum(len(r.emitted) for r in decode_rounds) / len(decode_rounds)
                                       if decode_rounds else 0.0),
            "stop": self.stop,
            **({"probes": self.probes[0], "probes_accepted": self.probes[1]} if self.probes else {}),
        }


def top_logits(row: np.ndarray, k: int = TOP_LOGITS) -> list[list]:
    """The k largest logits as [id, value], largest first, ties to the smaller id, NaN last: the order of a
    stable sort of -row, which the C core's `emtp_top_logits` (native/src/loop.c) also gives. Every round
    records them, so they come from sampling's `ranked`, which sorts only the ids that can make the top k:
    at Gemma's 262144-token vocabulary the full sort took 32 ms a round, about an E2B int4 decode."""
    return [[int(i), float(row[i])] for i in ranked(row, k)]


def choose(logits: np.ndarray, sampler: Sampler | None) -> int:
    """The target's token for one position: argmax, or a sample of the processed distribution."""
    if sampler is None:
        return int(np.argmax(logits))
    return sampler.sample(sampler.distribution(logits))


def draft_tokens(backend: Backend, token: int, carry: np.ndarray, position: int, views, k: int,
                 sampler: Sampler | None) -> tuple[list[int], list[np.ndarray]]:
    """K drafter steps from the last known token; in sampling mode also the q distributions."""
    drafts, dists = [], []
    for _ in range(k):
        logits, carry = backend.draft(token, carry, position, views)
        if sampler is None:
            token = int(np.argmax(logits))
        else:
            dists.append(sampler.distribution(logits))
            token = sampler.sample(dists[-1])
        drafts.append(token)
    return drafts, dists


def accept_greedy(drafts: Sequence[int], logits: np.ndarray) -> tuple[list[int], int]:
    """Target argmax at every verified position and the number of leading drafts it agrees with."""
    choices = [int(i) for i in np.argmax(logits, axis=-1)]
    n = 0
    while n < len(drafts) and drafts[n] == choices[n]:
        n += 1
    return choices, n


def accept_sampled(drafts: Sequence[int], dists: Sequence[np.ndarray], logits: np.ndarray,
                   sampler: Sampler) -> tuple[list[int], int]:
    """Speculative sampling: accept d_i with prob min(1, p_i(d_i)/q_i(d_i)); on the first rejection draw
    from norm(max(p_i - q_i, 0)); after K acceptances draw the bonus from p_K."""
    for i, (d, q) in enumerate(zip(drafts, dists, strict=True)):
        p = sampler.distribution(logits[i])
        if not sampler.accept(p[d], q[d]):
            return list(drafts[:i]) + [sampler.sample(residual(p, q))], i
    bonus = sampler.sample(sampler.distribution(logits[len(drafts)]))
    return list(drafts) + [bonus], len(drafts)


def clip(tokens: list[int], budget: int, stop_ids: Sequence[int]) -> list[int]:
    """Keep at most `budget` tokens and nothing after the first stop id."""
    tokens = tokens[:budget]
    for i, t in enumerate(tokens):
        if t in stop_ids:
            return tokens[: i + 1]
    return tokens


def _stop_reason(gen: Generation, cfg: LoopConfig, stop_ids: Sequence[int], context: int) -> str:
    if gen.tokens and gen.tokens[-1] in stop_ids:
        return "eos"
    if len(gen.tokens) >= cfg.max_new_tokens:
        return "max_new_tokens"
    if len(gen.prompt) + len(gen.tokens) > context:  # the newest token has no slot left
        return "context"
    return ""


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000.0, 3)


def _probe_draft(backend: Backend, last: int, carry: np.ndarray, q: int, views, sampler: Sampler | None,
                 rng: PCG32 | None) -> tuple[int, np.ndarray | None]:
    """A probe: the round's first drafter step, never verified (greedy: argmax; sampling: a draw from q
    with the probe stream, so the main stream is the same as in a plain round)."""
    logits, _ = backend.draft(last, carry, q, views)
    if sampler is None:
        return int(np.argmax(logits)), None
    dist = sampler.distribution(logits)
    return draw(dist, rng.uniform()), dist


def generate(backend: Backend, prompt: Sequence[int], cfg: LoopConfig,
             on_round: Callable[[Round], None] | None = None) -> Generation:
    """Run the loop until a stop id, `max_new_tokens`, or the end of the context."""
    if not prompt:
        raise EdgeMTPError("the prompt is empty; give at least one token")
    if len(prompt) > backend.context:
        raise EdgeMTPError(f"the prompt has {len(prompt)} tokens but the context holds {backend.context}")
    if cfg.draft_len < 0 or cfg.max_new_tokens < 1:
        raise EdgeMTPError("--draft-len must be >= 0 and --max-new-tokens >= 1")
    if cfg.auto and cfg.auto.max_draft_len != cfg.draft_len:
        raise EdgeMTPError(f"--draft-costs give verify costs up to K={cfg.auto.max_draft_len}, but the most "
                           f"drafts a round may take is {cfg.draft_len}; give {cfg.draft_len + 2} numbers")
    sampler = Sampler(cfg.sampling) if cfg.sampling else None
    policy = DraftLenState(cfg.auto) if cfg.auto else None
    probe_rng = PCG32(cfg.sampling.seed, PROBE_STREAM) if policy and sampler else None
    gen = Generation(prompt=list(prompt))
    stop_ids = backend.stop_ids

    def record(r: Round) -> None:
        gen.rounds.append(r)
        gen.tokens += r.emitted
        if on_round:
            on_round(r)

    t0 = time.perf_counter()
    out = backend.prefill(prompt)
    first = choose(out.logits[-1], sampler)
    carry = out.hidden[-1]
    record(Round(0, len(prompt) - 1, [], [first], 0, [first], top_logits(out.logits[-1]), {"verify": _ms(t0)}))
    prev = (0, len(prompt) - 1)  # positions the last target pass processed (for the hf drafter view)
    max_len = len(prompt) + cfg.max_new_tokens
    while not (reason := _stop_reason(gen, cfg, stop_ids, backend.context)):
        seq_len = len(prompt) + len(gen.tokens)
        q, last = seq_len - 1, gen.tokens[-1]
        k = min(cfg.draft_len, max_len - seq_len - 1, backend.context - 1 - q)
        decision = policy.decide(k) if policy else None
        if decision:
            k = decision.k
        t0 = time.perf_counter()
        drafts, dists, probe = [], [], None
        if k > 0 or (decision and decision.probe):
            views = drafter_views(*prev, seq_len, backend.sliding_window, cfg.kv_view)
            if k > 0:
                drafts, dists = draft_tokens(backend, last, carry, q, views, k, sampler)
            else:
                probe = _probe_draft(backend, last, carry, q, views, sampler, probe_rng)
        t1 = time.perf_counter()
        out = backend.verify([last] + drafts, q)
        if sampler is None:
            choices, n = accept_greedy(drafts, out.logits)
            new = choices[: n + 1]
        elif drafts:
            choices, n = accept_sampled(drafts, dists, out.logits, sampler)
            new = choices
        else:
            p = sampler.distribution(out.logits[0])
            choices = new = [sampler.sample(p)]
        extra = None
        if decision:
            extra = {"rates": decision.rates}
            if drafts:
                policy.record(len(drafts), n)
            if probe:
                ok = (probe[0] == choices[0] if sampler is None
                      else probe_rng.uniform() * probe[1][probe[0]] < p[probe[0]])
                policy.record_probe(ok)
                extra["probe"] = {"draft": probe[0], "accepted": bool(ok)}
        new = clip(new, max_len - seq_len, stop_ids)
        n = len(new) - 1
        carry = out.hidden[n]
        prev = (q, q + len(drafts))
        backend.rollback(q + n + 1)
        ms = {"draft": round((t1 - t0) * 1000.0, 3), "verify": _ms(t1)}
        record(Round(len(gen.rounds), q, drafts, choices, n, new, top_logits(out.logits[n]), ms, extra))
    gen.stop = reason
    if policy:
        gen.probes = (policy.probes, policy.probes_accepted)
    return gen
