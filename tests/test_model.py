"""The export modules against transformers (fp32): prefill, chunked prefill, verify at an offset, drafter step."""

from __future__ import annotations

import pytest
import torch

from edge_mtp.model import FULL, SLIDING, load_pair

TOL = 1e-4
PROMPT_LEN = 40  # > 2 sliding windows (16) of the tiny presets


@pytest.fixture(scope="module")
def loaded(pairs, preset):
    target_dir, drafter_dir = pairs.dirs(preset)
    target, tcfg, drafter, dcfg = load_pair(target_dir, drafter_dir, "float32")
    hf_target, hf_drafter = pairs.hf(preset)
    ids = torch.randint(107, tcfg.text.vocab_size, (1, PROMPT_LEN + 5), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        hf = hf_target(ids, output_hidden_states=True, return_shared_kv_states=True)
    return target, tcfg, drafter, hf_target, hf_drafter, ids, hf


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().max().item()


def test_logits_are_not_flat(loaded):
    # A meaningful comparison needs logits with LLM-like spread; near-ties would make argmax fragile.
    *_, hf = loaded
    assert hf.logits.std().item() > 1.0


def test_prefill_matches_transformers(loaded):
    target, tcfg, *_, ids, hf = loaded
    with torch.no_grad():
        logits, hidden, _ = target.run(ids, torch.arange(ids.shape[1]), target.new_cache(64))
    assert _max_diff(logits, hf.logits) <= TOL
    assert _max_diff(hidden, hf.hidden_states[-1]) <= TOL * 10  # the final norm gain is up to 8


def test_chunked_prefill_matches_transformers(loaded):
    target, *_, ids, hf = loaded
    kv, chunks = target.new_cache(64), []
    with torch.no_grad():
        for start in range(0, ids.shape[1], 7):
            stop = min(start + 7, ids.shape[1])
            logits, _, kv = target.run(ids[:, start:stop], torch.arange(start, stop), kv)
            chunks.append(logits)
    assert _max_diff(torch.cat(chunks, dim=1), hf.logits) <= TOL


def test_verify_at_offset_after_rollback_matches_transformers(loaded):
    """Prefill, write 5 garbage tokens past the prompt, roll back, verify the real 5: stale slots must not leak."""
    target, *_, ids, hf = loaded
    kv = target.new_cache(64)
    with torch.no_grad():
        _, _, kv = target.run(ids[:, :PROMPT_LEN], torch.arange(PROMPT_LEN), kv)
        garbage = torch.full((1, 5), 200)
        _, _, kv = target.run(garbage, torch.arange(PROMPT_LEN, PROMPT_LEN + 5), kv)
        logits, hidden, _ = target.run(ids[:, PROMPT_LEN:], torch.arange(PROMPT_LEN, PROMPT_LEN + 5), kv)
    assert _max_diff(logits, hf.logits[:, PROMPT_LEN:]) <= TOL


def test_drafter_step_matches_transformers(loaded):
    target, tcfg, drafter, hf_target, hf_drafter, ids, hf = loaded
    n = PROMPT_LEN  # the drafter sees the K/V of positions 0..n-1 and queries at position n
    kv = target.new_cache(64)
    with torch.no_grad():
        _, hidden, kv = target.run(ids[:, :n], torch.arange(n), kv)
        shared = {k: (v[0][:, :, :n], v[1][:, :, :n]) for k, v in hf.shared_kv_states.items()}
        token = ids[:, n:n + 1]
        hf_in = torch.cat([hf_target.get_input_embeddings()(token), hf.hidden_states[-1][:, n - 1:n]], dim=-1)
        ref = hf_drafter(inputs_embeds=hf_in, position_ids=torch.tensor([[n]]), shared_kv_states=shared,
                         attention_mask=torch.ones(1, n + 1, dtype=torch.long))
        s, f = tcfg.text.store_layer(SLIDING), tcfg.text.store_layer(FULL)
        act = torch.cat([target.embed(token), hidden[:, -1:]], dim=-1)
        window = tcfg.text.sliding_window
        logits, carry = drafter(act, torch.tensor([n]), kv[2 * s], kv[2 * s + 1], kv[2 * f], kv[2 * f + 1],
                                torch.tensor([[n - 1 - window, n - 1]]), torch.tensor([[0, n - 1]]))
    assert _max_diff(logits, ref.logits) <= TOL
    assert _max_diff(carry, ref.last_hidden_state) <= TOL
    assert logits.argmax().item() == ref.logits.argmax().item()


def test_dense_head_matches_full_vocab_projection(pairs, preset):
    """--dense-head scores every token with the tied table; the centroid head agrees on its candidates."""
    target_dir, drafter_dir = pairs.dirs(preset)
    _, _, clustered, _ = load_pair(target_dir, drafter_dir, "float32")
    _, _, dense, _ = load_pair(target_dir, drafter_dir, "float32", dense_head=True)
    hn = torch.randn(1, 1, clustered.cfg.text.hidden_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full = dense.logits(hn)
        sparse = clustered.logits(hn)
    candidates = sparse > sparse.min()
    assert candidates.sum().item() == clustered.cfg.centroid_top_k * (
        clustered.cfg.text.vocab_size // clustered.cfg.num_centroids)
    assert _max_diff(sparse[candidates], full[candidates]) <= TOL
