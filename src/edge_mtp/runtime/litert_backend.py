"""The LiteRT backend: runs a `.litertlm` bundle's graphs with `ai_edge_litert.CompiledModel`.

The K/V cache is one set of host-memory TensorBuffers, passed as both input and output of every
target signature and as the drafter's read-only inputs, so no call copies the cache through Python
(the way LiteRT-LM binds it). The bundle is driven the way LiteRT-LM drives it: token embeddings
from the embedder sections, prefill of all but the last prompt token in `prefill_<N>` chunks
(padding rows at position 0 with token 0's embedding), the last prompt token through `decode`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from edge_mtp.errors import EdgeMTPError
from edge_mtp.litertlm import read_bundle
from edge_mtp.runtime.backend import TargetStep
from edge_mtp.runtime.views import DrafterViews, mask_inputs

EMBEDDER, PER_LAYER_EMBEDDER = "tf_lite_embedder", "tf_lite_per_layer_embedder"
PREFILL_DECODE, MTP_DRAFTER = "tf_lite_prefill_decode", "tf_lite_mtp_drafter"


class _Graph:
    """One CompiledModel with pre-created buffers for every signature; `kv` buffers are shared.

    With `kv=None` the cache buffers are created here (from the first signature that has them) and
    exposed as `.kv` for the other graphs to share.
    """

    def __init__(self, data: bytes, environment, options, kv: dict | None = None):
        from ai_edge_litert.compiled_model import CompiledModel

        self.model = CompiledModel.from_buffer(data, environment=environment, options=options)
        self.signatures = self.model.get_signature_list()
        if kv is None:
            sig = next(iter(self.signatures))
            kv = {n: self.model.create_input_buffer_by_name(sig, n)
                  for n in self.signatures[sig]["inputs"] if n.startswith("kv_cache_")}
        self.kv = kv
        self.inputs, self.outputs, self.shapes = {}, {}, {}
        for sig, io in self.signatures.items():
            details = {**self.model.get_input_tensor_details(sig), **{
                f"out:{k}": v for k, v in self.model.get_output_tensor_details(sig).items()}}
            self.shapes[sig] = {k: tuple(v["shape"]) for k, v in details.items()}
            self.inputs[sig] = {n: kv.get(n) or self.model.create_input_buffer_by_name(sig, n) for n in io["inputs"]}
            self.outputs[sig] = {n: kv.get(n) or self.model.create_output_buffer_by_name(sig, n)
                                 for n in io["outputs"]}

    def run(self, sig: str, **feeds: np.ndarray) -> dict[str, np.ndarray]:
        for name, value in feeds.items():
            self.inputs[sig][name].write(value)
        self.model.run_by_name(sig, self.inputs[sig], self.outputs[sig])
        return {n: self._read(sig, n) for n in self.outputs[sig] if not n.startswith("kv_cache_")}

    def _read(self, sig: str, name: str) -> np.ndarray:
        shape = self.shapes[sig][f"out:{name}"]
        return self.outputs[sig][name].read(int(np.prod(shape)), np.float32).reshape(shape)


class LiteRTBackend:
    name = "python-litert"

    def __init__(self, bundle_path: Path | str, threads: int = 2):
        from ai_edge_litert.environment import Environment
        from ai_edge_litert.options import CpuOptions, Options
        from ai_edge_litert.hardware_accelerator import HardwareAccelerator

        bundle = read_bundle(bundle_path)
        manifest = self.manifest = bundle.manifest()
        self.model_id = "sha256:" + bundle.manifest_sha256()[:16]
        self.stop_ids = tuple(manifest["stop_ids"])
        self.sliding_window = int(manifest["sliding_window"])
        self.vocab_size = int(manifest["vocab_size"])
        self.draft_len = int(manifest["draft_len"])
        self.tokenizer_json = bundle.tokenizer_json()
        env = Environment.create()  # one environment, so every graph can bind the same K/V buffers
        options = Options(hardware_accelerators=HardwareAccelerator.CPU, cpu_options=CpuOptions(num_threads=threads))
        self.target = _Graph(bundle.model(PREFILL_DECODE), env, options)
        for name, shape in manifest["kv_cache"].items():  # start from a zeroed cache
            self.target.kv[name].write(np.zeros(shape, np.float32))
        self.context = manifest["kv_cache"]["kv_cache_k_0"][2]
        load = lambda kind: _Graph(bundle.model(kind), env, options, self.target.kv)  # noqa: E731
        self.embedder = load(EMBEDDER)
        self.per_layer = load(PER_LAYER_EMBEDDER) if bundle.find(PER_LAYER_EMBEDDER) else None
        self.drafter = load(MTP_DRAFTER) if bundle.find(MTP_DRAFTER) else None
        self.verify_len = self.target.shapes["verify"]["input_pos"][0]
        self.prefill_lengths = sorted(int(s.split("_")[1]) for s in self.target.signatures if s.startswith("prefill_"))
        self.length = 0

    # ---- embeddings ------------------------------------------------------------------------------
    def _embed(self, tokens: Sequence[int]) -> dict[str, np.ndarray]:
        """Per-token embedder calls (the embedder signatures take one token, as LiteRT-LM's do)."""
        rows = [self.embedder.run("embedder", token_ids=np.array([[t]], np.int32))["embeddings"] for t in tokens]
        feeds = {"embeddings": np.concatenate(rows, axis=1)}
        if self.per_layer:
            ple = [self.per_layer.run("per_layer_embedder", token_ids=np.array([[t]], np.int32))
                   ["per_layer_embeddings"] for t in tokens]
            feeds["per_layer_embeddings"] = np.concatenate(ple, axis=1)
        return feeds

    def _target(self, sig: str, tokens: Sequence[int], start: int, rows: int) -> dict[str, np.ndarray]:
        """Run `tokens` at start.. through `sig` (of `rows` rows; the rest padded at position 0)."""
        pad = rows - len(tokens)
        feeds = self._embed(list(tokens) + [0] * pad)
        positions = np.zeros(rows, np.int32)
        positions[: len(tokens)] = np.arange(start, start + len(tokens))
        return self.target.run(sig, input_pos=positions, **feeds)

    # ---- Backend interface -----------------------------------------------------------------------
    def prefill(self, tokens: Sequence[int]) -> TargetStep:
        if len(tokens) > self.context:
            raise EdgeMTPError(f"the prompt has {len(tokens)} tokens but the bundle's context is {self.context}")
        done, head = 0, len(tokens) - 1
        while head - done > 0:
            fits = [n for n in self.prefill_lengths if done + n <= self.context]
            if not fits:
                break
            n = next((n for n in fits if n >= head - done), fits[-1])
            self._target(f"prefill_{n}", tokens[done:min(head, done + n)], done, n)
            done = min(head, done + n)
        self.length = done
        out = self.verify(tokens[done:], done)
        return TargetStep(out.logits[-1:], out.hidden[-1:])

    def verify(self, tokens: Sequence[int], start: int) -> TargetStep:
        if start != self.length:
            raise RuntimeError(f"target run at position {start}, but {self.length} positions are valid")
        if len(tokens) == self.verify_len:
            out = self._target("verify", tokens, start, len(tokens))
            logits, hidden = out["logits"][0], out["activations"][0]
        else:  # fewer drafts than the verify signature takes (end of budget): one decode per token
            steps = [self._target("decode", [t], start + i, 1) for i, t in enumerate(tokens)]
            logits = np.concatenate([s["logits"][0] for s in steps])
            hidden = np.concatenate([s["activations"][0] for s in steps])
        self.length = start + len(tokens)
        return TargetStep(logits, hidden)

    def rollback(self, length: int) -> None:
        self.length = length

    def draft(self, token: int, carry: np.ndarray, position: int, views: DrafterViews):
        if self.drafter is None:
            raise EdgeMTPError("this bundle has no tf_lite_mtp_drafter section; use --draft-len 0")
        input_pos, mask = mask_inputs(views, position, self.context, self.sliding_window)
        embedding = self.embedder.run("embedder", token_ids=np.array([[token]], np.int32))["embeddings"]
        activations = np.concatenate([embedding, carry.reshape(1, 1, -1).astype(np.float32)], axis=-1)
        out = self.drafter.run("mtp_drafter", activations=activations, input_pos=input_pos, mask=mask)
        return out["logits"][0, 0], out["projected_activations"][0, 0]
