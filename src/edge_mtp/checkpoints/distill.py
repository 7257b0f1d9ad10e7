"""Distil a tiny drafter on its target's own greedy continuations, so tests and the demo see real acceptance.

A drafter with random weights is never right (every round accepts 0 drafts). Teacher-forced training on
the target's greedy continuations of a few fixed prompts makes it predict those continuations, which
gives rounds with every acceptance count 0..K on those prompts (about 300 steps memorise them:
docs/model.md#stand-in-checkpoints).

Each example is a round start: the last known token at position q, the target's hidden state at q-1
as carry, the clean K/V view (slots < q). The drafter is unrolled for `UNROLL` steps feeding its own
carry and the true next token, with a cross-entropy loss on the dense head and on the centroid scores
(so the clustered head selects the right cluster).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.nn import functional as F

from edge_mtp.model import SLIDING, FULL, load_drafter, load_target

NUM_PROMPTS = 16
PROMPT_LEN = 12
CONTINUATION = 48
UNROLL = 4
BATCH = 64
LEARNING_RATE = 1e-2
FIRST_ORDINARY_ID = 107  # ids below are Gemma's special/unused tokens


def greedy_continuation(target, prompt: list[int], steps: int) -> list[int]:
    seq = list(prompt)
    kv = target.new_cache(len(prompt) + steps)
    logits, _, kv = target.run(torch.tensor([seq]), torch.arange(len(seq)), kv)
    for _ in range(steps):
        seq.append(int(logits[0, -1].argmax()))
        logits, _, kv = target.run(torch.tensor([seq[-1:]]), torch.tensor([len(seq) - 1]), kv)
    return seq


def _round_starts(target, sequences: list[list[int]]):
    """Per (sequence, q): stacked target K/V of the two store layers, carries h[q-1], clean view ranges."""
    cfg = target.cfg
    s, f = cfg.store_layer(SLIDING), cfg.store_layer(FULL)
    length = len(sequences[0])
    kv_all, hidden_all = [], []
    for seq in sequences:
        _, hidden, kv = target.run(torch.tensor([seq]), torch.arange(length), target.new_cache(length))
        kv_all.append([kv[2 * s], kv[2 * s + 1], kv[2 * f], kv[2 * f + 1]])
        hidden_all.append(hidden[0])
    buffers = [torch.cat([kv[i] for kv in kv_all]) for i in range(4)]  # [N, Hkv, S, D] each
    examples = [(n, q) for n in range(len(sequences)) for q in range(PROMPT_LEN, length - UNROLL)]
    return buffers, torch.stack(hidden_all), examples


def distill_drafter(target_dir: Path, drafter_dir: Path, steps: int, seed: int = 0, progress=None
                    ) -> tuple[dict[str, torch.Tensor], list[list[int]]]:
    """Train the drafter in `drafter_dir`; returns (its new state dict, the training prompts)."""
    torch.manual_seed(seed)
    target, tcfg = load_target(target_dir, "float32")
    drafter, dcfg = load_drafter(drafter_dir, "float32")
    vocab, window = tcfg.text.vocab_size, tcfg.text.sliding_window
    g = torch.Generator().manual_seed(seed)
    prompts = [torch.randint(FIRST_ORDINARY_ID, vocab, (PROMPT_LEN,), generator=g).tolist()
               for _ in range(NUM_PROMPTS)]
    with torch.no_grad():
        sequences = [greedy_continuation(target, p, CONTINUATION) for p in prompts]
        buffers, hidden, examples = _round_starts(target, sequences)
        tokens = torch.tensor(sequences)
        embeds = target.embed(tokens)  # [N, T, H]
    cluster_of = None
    if dcfg.use_ordered_embeddings:
        per_cluster = vocab // dcfg.num_centroids
        cluster_of = torch.empty(vocab, dtype=torch.long)
        cluster_of[drafter.masked_embedding.token_ordering] = torch.arange(vocab) // per_cluster
    drafter.train().requires_grad_(True)
    opt = torch.optim.Adam([p for p in drafter.parameters() if p.is_floating_point()], lr=LEARNING_RATE)
    task = progress.add_task("distil drafter", total=steps) if progress else None
    for _ in range(steps):
        pick = torch.randint(len(examples), (BATCH,), generator=g)
        n = torch.tensor([examples[i][0] for i in pick])
        q = torch.tensor([examples[i][1] for i in pick])
        views = torch.stack([(q - 1 - window).clamp(min=0), q - 1], dim=1)
        full = torch.stack([torch.zeros_like(q), q - 1], dim=1)
        kv = [b[n] for b in buffers]
        carry = hidden[n, q - 1][:, None]
        loss = 0.0
        for step in range(UNROLL):
            act = torch.cat([embeds[n, q + step][:, None], carry], dim=-1)
            hn = drafter.hidden(act, q, *kv, views, full)
            answer = tokens[n, q + step + 1]
            loss = loss + F.cross_entropy(torch.matmul(hn, drafter.model.embed_tokens.weight.t())[:, 0], answer)
            if cluster_of is not None:
                loss = loss + F.cross_entropy(drafter.masked_embedding.centroids(hn)[:, 0], cluster_of[answer])
            carry = drafter.post_projection(hn)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if task is not None:
            progress.advance(task)
    drafter.eval().requires_grad_(False)
    return {k: v.detach().clone() for k, v in drafter.state_dict().items()}, prompts
