"""The drafter's clustered LM head (model/drafter.py `CentroidHead`, docs/model.md#centroid-head) against
transformers' `Gemma4AssistantMaskedEmbedder` and a float64 reference: the top-k clusters' tokens get
their real logits, every other token min(those) - 1."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from transformers import Gemma4AssistantConfig, Gemma4TextConfig
from transformers.models.gemma4_assistant.modeling_gemma4_assistant import (
    Gemma4AssistantMaskedEmbedder,
)

from edge_mtp.checkpoints.presets import PRESETS
from edge_mtp.model.drafter import CentroidHead

VOCAB, HIDDEN, CLUSTERS, TOP_K = 512, 24, 16, 3


def _heads(seed: int):
    g = torch.Generator().manual_seed(seed)
    cfg = SimpleNamespace(centroid_top_k=TOP_K, num_centroids=CLUSTERS,
                          text=SimpleNamespace(hidden_size=HIDDEN, vocab_size=VOCAB))
    ours = CentroidHead(cfg)
    text = {**PRESETS["tiny-e2b"].drafter_text, "vocab_size": VOCAB, "hidden_size": HIDDEN}
    theirs = Gemma4AssistantMaskedEmbedder(Gemma4AssistantConfig(
        text_config=Gemma4TextConfig(**text), backbone_hidden_size=32, use_ordered_embeddings=True,
        num_centroids=CLUSTERS, centroid_intermediate_top_k=TOP_K))
    centroids = torch.randn(CLUSTERS, HIDDEN, generator=g)
    ordering = torch.randperm(VOCAB, generator=g)  # a permutation of the vocab, as in the checkpoints
    with torch.no_grad():
        for head in (ours, theirs):
            head.centroids.weight.copy_(centroids)
            head.token_ordering.copy_(ordering)
    table = torch.randn(VOCAB, HIDDEN, generator=g)
    hn = torch.randn(1, 1, HIDDEN, generator=g)
    return ours, theirs, table, hn


def test_equals_transformers_masked_embedder():
    for seed in range(5):
        ours, theirs, table, hn = _heads(seed)
        with torch.no_grad():
            a, b = ours(hn, table), theirs(hn, table)
        assert a.shape == b.shape == (1, 1, VOCAB)
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
        assert int(a.argmax()) == int(b.argmax())


def test_top_k_clusters_and_min_minus_one_fill():
    ours, _, table, hn = _heads(7)
    with torch.no_grad():
        logits = ours(hn, table)[0, 0].double()
    h = hn[0, 0].double()
    # float64 reference: the TOP_K best centroids; their tokens are rows of token_ordering viewed [C, V/C]
    best = torch.topk(ours.centroids.weight.double() @ h, TOP_K).indices
    ids = ours.token_ordering.view(CLUSTERS, VOCAB // CLUSTERS)[best].reshape(-1)
    dense = table.double() @ h
    chosen = torch.zeros(VOCAB, dtype=torch.bool)
    chosen[ids] = True
    assert int(chosen.sum()) == TOP_K * VOCAB // CLUSTERS
    torch.testing.assert_close(logits[chosen], dense[chosen], rtol=1e-5, atol=1e-5)
    fill = dense[chosen].min() - 1.0
    torch.testing.assert_close(logits[~chosen], fill.expand(int((~chosen).sum())), rtol=1e-5, atol=1e-5)
    # never the argmax outside the chosen clusters, even when a dense score there is higher
    assert chosen[int(logits.argmax())]
    assert int(logits.argmax()) == int(ids[dense[ids].argmax()])


def test_runtime_placement_gives_the_scatter_s_numbers():
    """`keep_candidates` leaves the candidates to the runtime (`place_candidates`, numpy), which must
    give the eager scatter's logits exactly."""
    import numpy as np

    from edge_mtp.model.drafter import keep_candidates
    from edge_mtp.runtime.export_backend import place_candidates

    for seed in range(3):
        ours, _, table, hn = _heads(seed)
        with torch.no_grad():
            reference = ours(hn, table)
            scores, ids = ours(hn, table, keep_candidates)
        assert ids.shape == scores.shape == (1, 1, TOP_K * VOCAB // CLUSTERS)
        placed = place_candidates(scores.numpy(), ids.numpy().astype(np.int32), VOCAB)
        assert np.array_equal(placed, reference[0, 0].numpy())


def test_cluster_ordered_table_gives_the_same_logits():
    """`HeadForm(clustered_table=True)` reads the rows of a table stored in cluster order (`cluster_ordered`,
    what LiteRT drafter sections hold) by position: the logits must equal the canonical-order head's exactly."""
    from edge_mtp.model.drafter import HeadForm, cluster_ordered, keep_candidates

    clustered = HeadForm(clustered_table=True)
    for seed in range(3):
        ours, _, table, hn = _heads(seed)
        permuted = cluster_ordered(table, ours.token_ordering)
        with torch.no_grad():
            reference = ours(hn, table)
            logits = ours(hn, permuted, form=clustered)
            scores, ids = ours(hn, permuted, keep_candidates, clustered)
            ref_scores, ref_ids = ours(hn, table, keep_candidates)
            wrong = ours(hn, table, form=clustered)  # canonical rows read by position: other numbers
        assert torch.equal(logits, reference)
        assert torch.equal(ids, ref_ids) and torch.equal(scores, ref_scores)
        assert not torch.equal(wrong, reference)


def test_multiply_sum_scores_equal_the_float64_dot_products():
    """`HeadForm(multiply_sum=True)` (the LiteRT drafter's form) scores the same candidates as the matmul, to
    float32 rounding of a differently ordered sum, and both equal a float64 reference."""
    from edge_mtp.model.drafter import HeadForm, cluster_ordered, keep_candidates

    for seed in range(3):
        ours, _, table, hn = _heads(seed)
        with torch.no_grad():
            ref_scores, ref_ids = ours(hn, table, keep_candidates)
            forms = [HeadForm(multiply_sum=True), HeadForm(clustered_table=True, multiply_sum=True)]
            tables = [table, cluster_ordered(table, ours.token_ordering)]
            for form, rows in zip(forms, tables, strict=True):
                scores, ids = ours(hn, rows, keep_candidates, form)
                assert torch.equal(ids, ref_ids)
                exact = table.double()[ids[0, 0]] @ hn[0, 0].double()
                torch.testing.assert_close(scores[0, 0].double(), exact, rtol=1e-6, atol=1e-6)
                torch.testing.assert_close(scores, ref_scores, rtol=1e-6, atol=1e-6)
