"""The bundle's graphs as thin wrappers over the one model definition, with the contract's tensor names
(`edge_mtp.contract`, docs/bundle.md).

The engine never reads prefill logits, so prefill signatures return the cache only.

Drafter conventions (LiteRT-LM's CPU executor): `input_pos` is the position *before* the query
token (the query itself sits at input_pos + 1, where transformers applies RoPE), and `mask` marks the
target K/V slots the round may read. From its last visible slot e the graph derives both views:
full layers read slots 0..min(e, input_pos + 1), sliding layers e-W..e. LiteRT-LM passes slots
0..input_pos, which is the "clean" view; our runtime passes the transformers-exact view by moving e
(see `edge_mtp.runtime.views`, docs/loop.md).

Weights as inputs: the exporter builds the models with their weight matrices left on disk
(`load_target_skeleton`) and converts every graph with those matrices as extra inputs
`weights_<key>` (`ExternalWeights`), so a converter never holds a weight; the weights are bound into
the converted file afterwards, tensor by tensor (`edge_mtp.quantize`).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from edge_mtp import contract as c
from edge_mtp.model import FULL, SLIDING, Gemma4Drafter, Gemma4Target, TextConfig
from edge_mtp.model.layers import AttentionForm, KVWriter, NormFn, rms_norm, write_rows
from edge_mtp.model.drafter import HeadForm, keep_candidates, scatter_candidates
from edge_mtp.model.target import SlidingReads, WindowReader


def kv_names(cfg: TextConfig) -> list[str]:
    """Cache tensor names in the order of `Gemma4Target.kv_shapes`: k_i, v_i per producer layer i."""
    return [c.kv_name(kind, i) for i in cfg.producer_layers for kind in ("k", "v")]


def drafter_kv_names(cfg: TextConfig) -> list[str]:
    """The target cache tensors the drafter reads: K, V of the last sliding and the last full producer."""
    s, f = cfg.store_layer(SLIDING), cfg.store_layer(FULL)
    return [c.kv_name("k", s), c.kv_name("v", s), c.kv_name("k", f), c.kv_name("v", f)]


def _short(name: str) -> str:
    """Converters flatten a `kv_cache` dict argument into `kv_cache_<key>`; this is the key."""
    return name.removeprefix(c.KV_PREFIX)


class ExternalWeights:
    """A model's weight matrices that live on disk: {module key: (checkpoint tensor name, shape)}.

    `sample()` gives zero-strided stand-ins (no memory) for the converter's sample inputs; `bound()`
    puts the converter's input tensors where the parameters were while a graph is traced. Input keys
    are `<role>__<module key with dots as __>`, unique across target and drafter.
    """

    def __init__(self, module: nn.Module, role: str, tensors: dict[str, tuple[str, tuple]]):
        self.module, self.role, self.tensors = module, role, tensors

    def key(self, module_key: str) -> str:
        return f"{self.role}__{module_key.replace('.', '__')}"

    def sample(self, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
        return {self.key(k): torch.zeros((), dtype=dtype).expand(shape) for k, (_, shape) in self.tensors.items()}

    def subset(self, keep) -> "ExternalWeights":
        """The same weights, restricted to module keys for which `keep(key)` is true (a graph's own)."""
        return ExternalWeights(self.module, self.role, {k: v for k, v in self.tensors.items() if keep(k)})

    def sources(self) -> dict[str, tuple[str, tuple]]:
        """{input key: (checkpoint tensor name, shape)}."""
        return {self.key(k): v for k, v in self.tensors.items()}

    @contextmanager
    def bound(self, weights: dict[str, torch.Tensor] | None):
        if weights is None:
            yield
            return
        owners = [(self.module.get_submodule(k.rpartition(".")[0]), k.rpartition(".")[2], self.key(k))
                  for k in self.tensors]
        for owner, leaf, key in owners:
            owner._parameters[leaf] = weights[key]
        try:
            yield
        finally:
            for owner, leaf, _ in owners:
                owner._parameters[leaf] = None


class _NoWeights:
    """Stand-in for models that hold their own weights (eager runs, tests)."""

    @contextmanager
    def bound(self, weights):
        yield

    def sample(self, dtype=torch.float32) -> dict:
        return {}


def _weights(external: ExternalWeights | None):
    return external if external is not None else _NoWeights()


class LookupGraph(nn.Module):
    """An embedder section: token_ids [1,1] int32 -> `embeddings` or `per_layer_embeddings`."""

    def __init__(self, target: Gemma4Target, output: str, external: ExternalWeights | None = None):
        super().__init__()
        self.target = target
        self.output = output
        self.external = _weights(external)

    def forward(self, token_ids: torch.Tensor, weights=None) -> dict[str, torch.Tensor]:
        lookup = self.target.embed if self.output == c.EMBEDDINGS else self.target.embed_per_layer
        with self.external.bound(weights):
            return {self.output: lookup(token_ids)}


class TargetGraph(nn.Module):
    """One target signature; `with_outputs=False` for prefill (cache only). `writer` writes the K/V rows
    (LiteRT: dynamic-update-slice, ONNX: ScatterElements); `norm` computes the RMSNorms (LiteRT: the fused
    `odml.rms_norm` composite, ONNX: plain ops); `sliding_reads` and `attention` choose how the attention
    reads the cache (`Gemma4Target.decode`)."""

    def __init__(self, target: Gemma4Target, writer: KVWriter = write_rows, with_outputs: bool = True,
                 external: ExternalWeights | None = None, norm: NormFn = rms_norm,
                 sliding_reads: SlidingReads | None = None, attention: AttentionForm = AttentionForm()):
        super().__init__()
        self.target = target
        self.writer = writer
        self.norm = norm
        self.sliding_reads = sliding_reads
        self.attention = attention
        self.with_outputs = with_outputs
        self.names = kv_names(target.cfg)
        self.external = _weights(external)

    def forward(self, embeddings, input_pos, kv_cache: dict[str, torch.Tensor], per_layer_embeddings=None,
                weights=None):
        kv = [kv_cache[_short(n)] for n in self.names]
        with self.external.bound(weights):
            hidden, *kv = self.target.decode(embeddings, per_layer_embeddings, input_pos, *kv, writer=self.writer,
                                             norm=self.norm, sliding_reads=self.sliding_reads,
                                             attention=self.attention)
            out = dict(zip(self.names, kv, strict=True))
            if self.with_outputs:
                out[c.LOGITS] = self.target.lm_head(hidden)
                out[c.ACTIVATIONS] = hidden
        return out


class DrafterGraph(nn.Module):
    """One draft step from LiteRT-LM's inputs. `candidates=True` (centroid head only): outputs the head's
    candidates (`CANDIDATE_LOGITS`, `CANDIDATE_IDS`) instead of full-vocabulary `LOGITS`. With a
    `window_reader` the sliding layers get only the slots their window can reach, not the whole buffer;
    `attention`, `head`: the forms of the attention products and of the centroid head
    (`layers.AttentionForm`, `model.drafter.HeadForm`); `norm` computes the RMSNorms (as `TargetGraph`'s)."""

    def __init__(self, drafter: Gemma4Drafter, target_cfg: TextConfig, external: ExternalWeights | None = None,
                 candidates: bool = False, window_reader: WindowReader | None = None,
                 attention: AttentionForm = AttentionForm(), head: HeadForm = HeadForm(), norm: NormFn = rms_norm):
        super().__init__()
        self.attention = attention
        self.norm = norm
        if head != HeadForm() and not has_centroid_head(drafter):
            raise ValueError(f"{head} needs the drafter's centroid head")
        self.head = head
        self.drafter = drafter
        self.window = target_cfg.sliding_window
        self.names = drafter_kv_names(target_cfg)
        self.external = _weights(external)
        self.candidates = candidates
        if candidates and not has_centroid_head(drafter):
            raise ValueError("candidates=True needs the drafter's centroid head")
        self.place = keep_candidates if candidates else scatter_candidates
        self.window_reader = window_reader

    def views(self, input_pos: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(query position [1], sliding range [1,2], full range [1,2]) from LiteRT-LM's inputs."""
        slots = torch.arange(mask.shape[-1], dtype=input_pos.dtype)
        last = torch.max(torch.where(mask.reshape(-1), slots, torch.full_like(slots, -1)))
        query = input_pos + 1
        zero = torch.zeros_like(last)
        sliding = torch.stack([torch.clamp(last - self.window, min=0), last]).reshape(1, 2)
        full = torch.stack([zero, torch.minimum(last, query[0])]).reshape(1, 2)
        return query, sliding, full

    def sliding_window(self, k: torch.Tensor, v: torch.Tensor, sliding: torch.Tensor):
        """(K, V, range) cut to the W + 1 slots the sliding range can span, rounded up to an even count (which
        a form that splits one-KV-head products into halves needs, `AttentionForm.halves`; the LiteRT
        drafter's own form does not split); unchanged when the buffer is not longer."""
        slots, length = k.shape[2], (self.window + 2) // 2 * 2
        if self.window_reader is None or slots <= length:
            return k, v, sliding
        start = torch.clamp(sliding[0, 0], max=slots - length)
        k, v = self.window_reader(k, start, length, 2), self.window_reader(v, start, length, 3)
        return k, v, sliding - start

    def forward(self, activations, input_pos, mask, kv_cache: dict[str, torch.Tensor], weights=None):
        query, sliding, full = self.views(input_pos, mask)
        k_s, v_s, k_f, v_f = (kv_cache[_short(n)] for n in self.names)
        k_s, v_s, sliding = self.sliding_window(k_s, v_s, sliding)
        with self.external.bound(weights):
            logits, carry = self.drafter(activations, query, k_s, v_s, k_f, v_f, sliding, full, self.place,
                                         self.attention, self.head, self.norm)
        if self.candidates:
            scores, ids = logits
            return {c.CANDIDATE_LOGITS: scores, c.CANDIDATE_IDS: ids.to(torch.int32), c.PROJECTED_ACTIVATIONS: carry}
        return {c.LOGITS: logits, c.PROJECTED_ACTIVATIONS: carry}


def has_centroid_head(drafter: Gemma4Drafter) -> bool:
    return drafter.cfg.use_ordered_embeddings and not drafter.dense_head


def sample_cache(cfg: TextConfig, context: int, names: list[str] | None = None,
                 dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Zero cache tensors keyed for a `kv_cache` argument; one tensor object per input: a shared sample
    tensor gets merged into a single graph input (docs/tooling.md#one-sample-tensor-per-input)."""
    all_names = kv_names(cfg)
    shapes = dict(zip(all_names, Gemma4Target.kv_shapes_of(cfg, context), strict=True))
    return {_short(n): torch.zeros(shapes[n], dtype=dtype) for n in (names or all_names)}


def target_sample(cfg: TextConfig, tokens: int, context: int, external: ExternalWeights | None = None,
                  dtype: torch.dtype = torch.float32) -> dict:
    sample = {
        c.EMBEDDINGS: torch.zeros(1, tokens, cfg.hidden_size, dtype=dtype),
        c.INPUT_POS: torch.arange(tokens, dtype=torch.int32),
        "kv_cache": sample_cache(cfg, context, dtype=dtype),
    }
    if cfg.ple_dim:
        sample[c.PER_LAYER_EMBEDDINGS] = torch.zeros(1, tokens, cfg.num_layers, cfg.ple_dim, dtype=dtype)
    weights = _weights(external).sample(dtype)
    if weights:
        sample["weights"] = weights
    return sample


def lookup_sample(tokens: int, external: ExternalWeights | None = None) -> dict:
    sample = {c.TOKEN_IDS: torch.zeros(1, tokens, dtype=torch.int32)}
    weights = _weights(external).sample()
    if weights:
        sample["weights"] = weights
    return sample


def drafter_sample(target_cfg: TextConfig, drafter: Gemma4Drafter, context: int,
                   external: ExternalWeights | None = None, dtype: torch.dtype = torch.float32) -> dict:
    sample = {
        c.ACTIVATIONS: torch.zeros(1, 1, 2 * drafter.cfg.backbone_hidden_size, dtype=dtype),
        c.INPUT_POS: torch.zeros(1, dtype=torch.int32),
        c.MASK: torch.ones(1, 1, 1, context, dtype=torch.bool),
        "kv_cache": sample_cache(target_cfg, context, drafter_kv_names(target_cfg), dtype),
    }
    weights = _weights(external).sample(dtype)
    if weights:
        sample["weights"] = weights
    return sample
