"""transformers as the oracle: plain and assisted `generate`, with the drafts and acceptance of every round.

The recorder wraps `SinglePositionMultiTokenCandidateGenerator` (transformers 5.24) to log what the
drafter proposed each round and how many drafts were kept (docs/loop.md#the-transformers-call-path).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from transformers.generation import candidate_generator as cg


@dataclass
class HFRounds:
    drafts: list[list[int]] = field(default_factory=list)
    accepted: list[int] = field(default_factory=list)


@contextmanager
def record_rounds():
    rounds = HFRounds()
    cls = cg.SinglePositionMultiTokenCandidateGenerator
    get_candidates, update = cls.get_candidates, cls.update_candidate_strategy

    def get(self, input_ids, *args, **kwargs):
        out_ids, logits = get_candidates(self, input_ids, *args, **kwargs)
        if out_ids.shape[1] > input_ids.shape[1]:
            rounds.drafts.append(out_ids[0, input_ids.shape[1]:].tolist())
        return out_ids, logits

    def upd(self, input_ids, scores, num_matches):
        if len(rounds.accepted) < len(rounds.drafts):
            rounds.accepted.append(int(num_matches))
        return update(self, input_ids, scores, num_matches)

    cls.get_candidates, cls.update_candidate_strategy = get, upd
    try:
        yield rounds
    finally:
        cls.get_candidates, cls.update_candidate_strategy = get_candidates, update


def hf_generate(target, prompt: list[int], max_new_tokens: int, drafter=None, draft_len: int = 0):
    """Greedy transformers generation; returns (new tokens, HFRounds or None)."""
    ids = torch.tensor([prompt])
    kwargs = dict(max_new_tokens=max_new_tokens, do_sample=False)
    with torch.no_grad():
        if drafter is None:
            return target.generate(ids, **kwargs)[0, len(prompt):].tolist(), None
        drafter.generation_config.num_assistant_tokens = draft_len
        with record_rounds() as rounds:
            out = target.generate(ids, assistant_model=drafter, **kwargs)
        return out[0, len(prompt):].tolist(), rounds
