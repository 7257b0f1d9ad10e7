"""Re-deriving the drafter's centroid head from the target's token embedding: balanced spherical k-means.

The head (`edge_mtp.model.drafter.CentroidHead`) splits the vocabulary into C clusters of exactly V/C
tokens (`token_ordering` lists cluster 0's ids, then cluster 1's, ...), scores C centroids, and gives real
logits only to the tokens of the top-k clusters. Tokens whose tied embeddings point the same way are
scored alike by any hidden state, so clustering the target's embedding rows by direction puts tokens that
compete for the same contexts into the same cluster. Clusters must have equal sizes, so every
assignment step fills clusters greedily (most confident tokens first) up to V/C each.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

CANDIDATES = 16  # best clusters tried per token before falling back to any cluster with room


def balanced_assign(sim: torch.Tensor, size: int) -> torch.Tensor:
    """Cluster per row of `sim` [V, C], every cluster getting exactly `size` rows: rows in order of their
    best similarity take their best cluster that still has room."""
    vocab, clusters = sim.shape
    top = sim.topk(min(CANDIDATES, clusters), dim=1)
    order = torch.argsort(top.values[:, 0], descending=True, stable=True).tolist()
    room = [size] * clusters
    out = [0] * vocab
    candidates = top.indices.tolist()
    for row in order:
        choice = next((c for c in candidates[row] if room[c]), None)
        if choice is None:
            choice = max(range(clusters), key=lambda c: (room[c] > 0, float(sim[row, c])))
        room[choice] -= 1
        out[row] = choice
    return torch.tensor(out, dtype=torch.long)


def balanced_kmeans(embedding: torch.Tensor, clusters: int, iterations: int = 10, seed: int = 0) -> torch.Tensor:
    """`token_ordering` [V] from balanced spherical k-means of the rows of `embedding` [V, H]."""
    vocab = embedding.shape[0]
    size = vocab // clusters
    x = F.normalize(embedding.detach().float().cpu(), dim=1)
    g = torch.Generator().manual_seed(seed)
    centers = x[torch.randperm(vocab, generator=g)[:clusters]]
    for _ in range(iterations):
        assign = balanced_assign(x @ centers.t(), size)
        sums = torch.zeros(clusters, x.shape[1]).index_add_(0, assign, x)
        centers = F.normalize(sums, dim=1)
    assign = balanced_assign(x @ centers.t(), size)
    return torch.argsort(assign * vocab + torch.arange(vocab))  # cluster-major, ids ascending inside


def centroid_weights(table: torch.Tensor, ordering: torch.Tensor, clusters: int) -> torch.Tensor:
    """Initial centroid scorer rows: the mean of each cluster's rows of the drafter's output table, so
    that a centroid's score starts as the mean logit of its tokens."""
    rows = table.detach()[ordering].float()
    return rows.view(clusters, -1, rows.shape[1]).mean(1).to(table.dtype)
