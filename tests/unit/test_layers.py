"""The decoder's building blocks (model/layers.py) against transformers' own Gemma 4 modules, or against a
float64 reference written here: RMSNorm, the embedding scale, RoPE incl. p-RoPE, attention, K/V writes.
No checkpoint: modules are built from config dicts (docs/model.md)."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import Gemma4TextConfig
from transformers.models.gemma4 import modeling_gemma4 as hf

from edge_mtp.checkpoints.presets import PRESETS
from edge_mtp.model.config import FULL, SLIDING, parse_text_config
from edge_mtp.model.layers import (
    AttentionForm,
    RotaryEmbedding,
    additive_mask,
    apply_rope,
    attend,
    write_rows,
    rms_norm,
    rope_inv_freq,
    scale_constant,
)

GEN = torch.Generator().manual_seed(0)


def _randn(*shape, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=GEN).to(dtype)


# ---- RMSNorm (docs/model.md#rmsnorm) ---------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("with_scale", [True, False])
def test_rms_norm_is_transformers_gemma4_rmsnorm(dtype, with_scale):
    x = _randn(2, 5, 64, dtype=dtype) * 3
    ref = hf.Gemma4RMSNorm(64, eps=1e-6, with_scale=with_scale)
    if with_scale:
        with torch.no_grad():
            ref.weight.copy_(_randn(64) * 2)
    ours = rms_norm(x, ref.weight if with_scale else None, 1e-6)
    assert ours.dtype == dtype
    assert torch.equal(ours, ref(x))  # same op order: bit for bit


def test_rms_norm_uses_the_weight_as_is_not_one_plus_weight():
    x, w = _randn(3, 16), _randn(16)
    xd = x.double()
    expected = xd / torch.sqrt((xd * xd).mean(-1, keepdim=True) + 1e-6) * w.double()  # float64 reference
    torch.testing.assert_close(rms_norm(x, w, 1e-6).double(), expected, rtol=1e-6, atol=1e-6)
    assert torch.equal(rms_norm(x, torch.zeros(16), 1e-6), torch.zeros_like(x))  # 1 + w would keep x


# ---- embedding scale (docs/model.md#embedding-scale) ----------------------------------------------------

@pytest.mark.parametrize(("hidden", "dtype", "expected"), [
    (1536, torch.bfloat16, 39.25), (2560, torch.bfloat16, 50.5), (1536, torch.float32, math.sqrt(1536)),
])
def test_embedding_scale_is_rounded_to_the_weight_dtype(hidden, dtype, expected):
    assert scale_constant(math.sqrt(hidden), dtype).item() == pytest.approx(expected, rel=1e-7)
    table = hf.Gemma4TextScaledWordEmbedding(10, 4, padding_idx=0, embed_scale=math.sqrt(hidden)).to(dtype)
    ids = torch.tensor([[3, 7]])
    ours = torch.nn.functional.embedding(ids, table.weight) * scale_constant(math.sqrt(hidden), dtype)
    assert torch.equal(ours, table(ids))


# ---- RoPE and p-RoPE (docs/model.md#rope-and-p-rope) -----------------------------------------------------

def _configs(preset: str):
    kwargs = dict(PRESETS[preset].target)
    return parse_text_config(kwargs, preset), Gemma4TextConfig(**kwargs)


@pytest.mark.parametrize("preset", ["tiny-e2b", "e2b"])
def test_inverse_frequencies_equal_transformers(preset):
    ours, theirs = _configs(preset)
    rotary = hf.Gemma4TextRotaryEmbedding(theirs)
    for layer_type in (SLIDING, FULL):
        inv = rope_inv_freq(ours.rope[layer_type], ours.head_dim_of(layer_type))
        assert torch.equal(inv, getattr(rotary, f"{layer_type}_inv_freq"))


def test_proportional_rope_rotates_a_quarter_of_the_pairs():
    ours, _ = _configs("e2b")
    inv = rope_inv_freq(ours.rope[FULL], 512)
    assert inv.shape == (256,) and bool((inv[:64] > 0).all()) and bool((inv[64:] == 0).all())
    # exponent over the full head dim 512, theta 1e6 (float64 reference)
    expected = torch.tensor([1e6 ** (-2 * j / 512) for j in range(64)], dtype=torch.float64)
    torch.testing.assert_close(inv[:64].double(), expected, rtol=1e-6, atol=0)
    rope = RotaryEmbedding(ours.rope[FULL], 512)
    x = _randn(1, 3, 2, 512)
    cos, sin = rope(torch.tensor([[5, 900, 40000]]), x.dtype)
    y = apply_rope(x, cos, sin)
    rotated = torch.zeros(512, dtype=torch.bool)
    rotated[:64] = rotated[256:320] = True
    assert torch.equal(y[..., ~rotated], x[..., ~rotated])  # dims with frequency 0 pass through
    assert not torch.allclose(y[..., rotated], x[..., rotated])


@pytest.mark.parametrize("preset", ["tiny-e2b", "e2b"])
@pytest.mark.parametrize("layer_type", [SLIDING, FULL])
def test_rotary_embedding_and_apply_equal_transformers(preset, layer_type):
    ours, theirs = _configs(preset)
    dim = ours.head_dim_of(layer_type)
    positions = torch.tensor([[0, 1, 17, 511, 4095]])
    x = _randn(1, 5, 3, dim)  # [B, T, heads, D]
    cos, sin = RotaryEmbedding(ours.rope[layer_type], dim)(positions, x.dtype)
    hf_cos, hf_sin = hf.Gemma4TextRotaryEmbedding(theirs)(x, positions, layer_type)
    assert torch.equal(cos, hf_cos) and torch.equal(sin, hf_sin)
    assert torch.equal(apply_rope(x, cos, sin), hf.apply_rotary_pos_emb(x, hf_cos, hf_sin, unsqueeze_dim=2))


# ---- attention (docs/model.md#attention) -----------------------------------------------------------------

def _attention_reference(q, k, v, valid):
    """softmax(q k^T) v per query head in float64, head h reading KV head h // (Hq / Hkv); scale 1."""
    b, t, hq, d = q.shape
    hkv = k.shape[1]
    out = torch.zeros(b, t, hq, d, dtype=torch.float64)
    for h in range(hq):
        kh = k[:, h // (hq // hkv)].double()          # [B, S, D]
        vh = v[:, h // (hq // hkv)].double().transpose(1, 2)  # stored [B, D, S] -> [B, S, D]
        scores = q[:, :, h].double() @ kh.transpose(1, 2)     # [B, T, S]
        scores = scores.masked_fill(~valid, float("-inf"))
        out[:, :, h] = torch.softmax(scores, dim=-1) @ vh
    return out.reshape(b, t, hq * d)


FORMS = [AttentionForm(), AttentionForm(einsum=False), AttentionForm(cache_first_head_dim=16),
         AttentionForm(einsum=False, cache_first_head_dim=16), AttentionForm(cache_first_head_dim=0, halves=False)]


@pytest.mark.parametrize("form", FORMS, ids=["einsum", "matmul", "einsum-cache-first", "matmul-cache-first",
                                             "cache-first-one-batch"])
@pytest.mark.parametrize(("hq", "hkv", "s"), [(4, 1, 11), (4, 1, 12), (8, 2, 12), (4, 4, 11)])
def test_attend_equals_plain_softmax_attention(hq, hkv, s, form):
    """Every form of the cache products (docs/tooling.md#cache-first-products; head dim 16 here, so the
    cache-first forms apply); an even slot count with one KV head takes the batch-of-two split."""
    b, t, d = 1, 3, 16
    q, k, v = _randn(b, t, hq, d), _randn(b, hkv, s, d), _randn(b, hkv, d, s)
    positions = torch.tensor([6, 7, 8])
    slots = torch.arange(s)
    valid = ((slots[None, :] <= positions[:, None]) & (slots[None, :] > positions[:, None] - 4))[None]  # window 4
    out = attend(q, k, v, additive_mask(valid, q.dtype), form)
    assert out.shape == (b, t, hq * d)
    torch.testing.assert_close(out.double(), _attention_reference(q, k, v, valid), rtol=0, atol=1e-5)


def test_masked_slots_do_not_matter():
    q, k, v = _randn(1, 1, 4, 8), _randn(1, 2, 6, 8), _randn(1, 2, 8, 6)
    valid = torch.tensor([[[True, True, True, False, False, False]]])
    mask = additive_mask(valid, q.dtype)
    k2, v2 = k.clone(), v.clone()
    k2[:, :, 3:] = 1e4
    v2[:, :, :, 3:] = -1e4
    assert torch.equal(attend(q, k, v, mask), attend(q, k2, v2, mask))


def test_write_rows_writes_consecutive_slots_of_both_layouts():
    k, v = torch.zeros(1, 2, 8, 3), torch.zeros(1, 2, 3, 8)
    new_k = _randn(1, 2, 2, 3)
    out_k = write_rows(k, new_k, torch.tensor(5), 2)
    out_v = write_rows(v, new_k.transpose(2, 3), torch.tensor(5), 3)
    assert torch.equal(out_k[:, :, 5:7], new_k) and not out_k[:, :, :5].any() and not out_k[:, :, 7:].any()
    assert torch.equal(out_v[:, :, :, 5:7], new_k.transpose(2, 3)) and not out_v[..., :5].any()
    assert not k.any()  # not in place
    same = write_rows(k, new_k, torch.tensor(5), 2, in_place=True)
    assert same is k and torch.equal(k, out_k)


@pytest.mark.parametrize("rows", [1, 3])
def test_onnx_scatter_writer_writes_what_write_rows_writes(rows):
    """The ONNX graphs' K/V writer (one ScatterElements on the buffer as it lies) against `write_rows`, for
    both cache layouts (K [1, N, S, D] along dim 2, V [1, N, D, S] along dim 3)."""
    from edge_mtp.export.onnx import scatter_writer

    k, v = _randn(1, 2, 8, 3), _randn(1, 2, 3, 8)
    new_k = _randn(1, 2, rows, 3)
    for buffer, new, dim in ((k, new_k, 2), (v, new_k.transpose(2, 3), 3)):
        expected = write_rows(buffer, new, torch.tensor(4), dim)
        out = scatter_writer(buffer, new, torch.tensor(4), dim)
        assert torch.equal(out, expected) and not torch.equal(out, buffer)


# ---- roofline: multiply-adds per token (benchmarks/roofline.py) -------------------------------------------

@pytest.mark.parametrize("preset", ["tiny-e2b", "tiny-e4b", "e2b", "e4b"])
def test_macs_per_row_count_every_matmul_weight_once(preset):
    """Without attention over the cache, a token's multiply-adds are the target's matmul weights, each used
    once, plus the tied LM head (the token table): counted here from the model's own modules."""
    from edge_mtp.bench.roofline import macs_per_row
    from edge_mtp.model import Gemma4Target

    cfg, _ = _configs(preset)
    with torch.device("meta"):
        model = Gemma4Target(cfg)
    matmuls = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    parts = macs_per_row(cfg, context=0)
    assert parts["attention (cache)"] == 0
    assert sum(parts.values()) == matmuls + model.embed_tokens.weight.numel()
    with_cache = macs_per_row(cfg, context=100)["attention (cache)"]
    assert with_cache == 100 * 2 * cfg.num_heads * sum(cfg.head_dims)


# ---- windowed sliding reads (docs/tooling.md#windowed-sliding-reads) --------------------------------------

def _narrow(buffer, start, length, dim):
    return buffer.narrow(dim, int(start), length)


@pytest.mark.parametrize(("window", "rows", "context"), [(512, 4, 2048), (512, 5, 8192), (16, 5, 512)])
def test_sliding_window_covers_every_visible_slot_from_an_aligned_start(window, rows, context):
    from edge_mtp.model.target import WINDOW_ALIGN, SlidingReads

    reads = SlidingReads.for_rows(_narrow, window, rows, context)
    assert reads.slots % WINDOW_ALIGN == 0 and reads.slots < context
    _assert_windows_cover(reads, rows, reads.slots, context, range(context - rows + 1))


def _assert_windows_cover(reads, rows: int, slots: int, context: int, firsts) -> None:
    """Every call of `rows` rows from each first position reads an aligned run of `slots` slots inside the
    buffer that holds every slot its rows can see."""
    from edge_mtp.model.target import WINDOW_ALIGN

    for first in firsts:
        start = int(reads.start(torch.tensor(first), slots, context))
        assert start % WINDOW_ALIGN == 0 and 0 <= start and start + slots <= context, first
        assert start <= max(0, first - reads.window + 1) and first + rows - 1 < start + slots, first


@pytest.mark.parametrize("rows", [1, 5, 40, 300, 500])
def test_a_dynamic_window_follows_the_call_s_rows(rows):
    """`rows=None` (ONNX's one dynamic-T graph): each call's length is computed from its own T, never past the
    buffer, and covers every slot its rows can see from an aligned start."""
    from edge_mtp.model.target import WINDOW_ALIGN, SlidingReads, window_slots

    window, context = 16, 512
    reads = SlidingReads.for_rows(_narrow, window, None, context)
    slots = reads.slots_for(rows, context)
    assert slots == min(window_slots(window, rows), context) and slots % WINDOW_ALIGN == 0
    _assert_windows_cover(reads, rows, slots, context, range(0, context - rows + 1, 7))


def test_no_window_where_it_saves_nothing_or_cannot_stay_aligned():
    from edge_mtp.model.target import SlidingReads

    assert SlidingReads.for_rows(_narrow, 512, 4, 512) is None  # the window is the whole buffer
    assert SlidingReads.for_rows(_narrow, 16, 4, 1000) is None  # a clamped start would not be aligned


@pytest.mark.parametrize(("fixed", "rows"), [(True, 5), (False, 1), (False, 5), (False, 300)])
@pytest.mark.parametrize("preset", ["tiny-e2b", "tiny-e4b"])
def test_windowed_decode_equals_whole_buffer_decode(preset, fixed, rows):
    """The same decoder over T rows with sliding layers reading a window or the whole buffer of a random
    cache: a window that hid a visible slot, or showed a hidden one, would change the result. `fixed`: the
    length of LiteRT's graphs (built for the rows); else each call's own (ONNX's `rows=None`)."""
    from edge_mtp.model import Gemma4Target
    from edge_mtp.model.target import SlidingReads

    cfg, _ = _configs(preset)
    context = 512
    model = Gemma4Target(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(_randn(*p.shape) * 0.05)
        reads = SlidingReads.for_rows(_narrow, cfg.sliding_window, rows if fixed else None, context)
        for first in [f for f in (141, 200, 268, 500) if f + rows <= context]:
            kv = [_randn(*shape) for shape in model.kv_shapes(context)]
            tokens = torch.randint(0, cfg.vocab_size, (1, rows), generator=GEN)
            embeds, ple = model.embed(tokens), model.embed_per_layer(tokens) if cfg.ple_dim else None
            positions = torch.arange(first, first + rows)
            whole = model.decode(embeds, ple, positions, *[t.clone() for t in kv])
            windowed = model.decode(embeds, ple, positions, *[t.clone() for t in kv], sliding_reads=reads)
            for a, b in zip(windowed, whole):  # hidden states, then every K/V buffer as written
                torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
