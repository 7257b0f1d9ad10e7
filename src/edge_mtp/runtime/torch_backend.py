"""The PyTorch backend: the export modules run eagerly, cache updated in place."""

from __future__ import annotations

from functools import partial
from typing import Sequence

import numpy as np
import torch

from edge_mtp.errors import EdgeMTPError
from edge_mtp.model import SLIDING, FULL, DrafterConfig, Gemma4Drafter, Gemma4Target, TargetConfig
from edge_mtp.model.layers import write_rows
from edge_mtp.runtime.backend import TargetStep
from edge_mtp.runtime.views import DrafterViews


IN_PLACE = partial(write_rows, in_place=True)  # one cache, updated in place, instead of a copy per step


class TorchBackend:
    name = "python-torch"

    def __init__(self, target: Gemma4Target, tcfg: TargetConfig, drafter: Gemma4Drafter | None,
                 context: int, model_id: str = "", prefill_chunk: int | None = None):
        self.target, self.drafter = target, drafter
        self.context = context
        self.sliding_window = tcfg.text.sliding_window
        self.stop_ids = tcfg.eos_ids
        self.model_id = model_id
        self.prefill_chunk = prefill_chunk
        self.kv = target.new_cache(context)
        self.length = 0
        text = tcfg.text
        self._store = {t: text.store_layer(t) for t in (SLIDING, FULL)}

    def _run(self, tokens: Sequence[int], start: int, last_only: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        if start != self.length:
            raise RuntimeError(f"target run at position {start}, but {self.length} positions are valid")
        if start + len(tokens) > self.context:
            raise EdgeMTPError(f"{start + len(tokens)} positions exceed the context of {self.context}")
        ids = torch.tensor([list(tokens)], dtype=torch.long)
        positions = torch.arange(start, start + len(tokens))
        with torch.no_grad():
            logits, hidden, self.kv = self.target.run(ids, positions, self.kv, last_only, IN_PLACE)
        self.length = start + len(tokens)
        return logits[0].float(), hidden[0]

    def prefill(self, tokens: Sequence[int]) -> TargetStep:
        self.length = 0
        chunk = self.prefill_chunk or len(tokens)
        for start in range(0, len(tokens), chunk):
            logits, hidden = self._run(tokens[start:start + chunk], start, last_only=True)
        return TargetStep(logits.numpy(), hidden.float().numpy())

    def verify(self, tokens: Sequence[int], start: int) -> TargetStep:
        logits, hidden = self._run(tokens, start)
        return TargetStep(logits.numpy(), hidden.float().numpy())

    def rollback(self, length: int) -> None:
        self.length = length

    def draft(self, token: int, carry: np.ndarray, position: int, views: DrafterViews):
        t = self.target
        with torch.no_grad():
            emb = t.embed(torch.tensor([[token]]))
            act = torch.cat([emb, torch.from_numpy(carry).to(emb.dtype)[None, None]], dim=-1)
            s, f = self._store[SLIDING], self._store[FULL]
            logits, carry = self.drafter(
                act, torch.tensor([position]), self.kv[2 * s], self.kv[2 * s + 1], self.kv[2 * f],
                self.kv[2 * f + 1], torch.tensor([views.sliding]), torch.tensor([views.full]))
        return logits[0, 0].float().numpy(), carry[0, 0].float().numpy()


def open_torch_backend(target_dir, drafter_dir, context: int, dtype: str = "auto", dense_head: bool = False,
                       prefill_chunk: int | None = None) -> tuple[TorchBackend, TargetConfig, DrafterConfig]:
    """Load a checked target + drafter pair from HF-layout folders into a ready backend."""
    from edge_mtp.model.checkpoint import checkpoint_id, load_pair

    target, tcfg, drafter, dcfg = load_pair(target_dir, drafter_dir, dtype, dense_head)
    backend = TorchBackend(target, tcfg, drafter, context, checkpoint_id(target_dir, drafter_dir), prefill_chunk)
    return backend, tcfg, dcfg
