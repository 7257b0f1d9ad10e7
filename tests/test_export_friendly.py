"""The modules are export-friendly: `torch.export` traces them with static shapes (no data-dependent
Python control flow, no transformers), and the exported programs compute exactly what eager does."""

from __future__ import annotations

import torch

from edge_mtp.model import load_pair

CONTEXT, T = 32, 5


def test_target_and_drafter_export_and_match_eager(pairs):
    target, tcfg, drafter, _ = load_pair(*pairs.dirs("tiny-e2b"), "float32")
    tokens = torch.randint(107, 4096, (1, T), generator=torch.Generator().manual_seed(0))
    positions = torch.arange(7, 7 + T)
    args = (target.embed(tokens), target.embed_per_layer(tokens), positions, *target.new_cache(CONTEXT))
    exported = torch.export.export(target, args)
    for got, want in zip(exported.module()(*args), target(*args)):
        assert torch.equal(got, want)

    text = tcfg.text
    kv = target.new_cache(CONTEXT)
    s, f = 2 * text.store_layer("sliding_attention"), 2 * text.store_layer("full_attention")
    draft_args = (torch.randn(1, 1, 2 * text.hidden_size), torch.tensor([9]), kv[s], kv[s + 1], kv[f], kv[f + 1],
                  torch.tensor([[0, 8]]), torch.tensor([[0, 8]]))
    exported = torch.export.export(drafter, draft_args)
    for got, want in zip(exported.module()(*draft_args), drafter(*draft_args)):
        assert torch.equal(got, want)
