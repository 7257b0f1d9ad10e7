"""The LiteRT backend: runs a `.litertlm` bundle's graphs with `ai_edge_litert.CompiledModel`.

The K/V cache is one set of host-memory TensorBuffers, passed as both input and output of every
target signature and as the drafter's read-only inputs, so no call copies the cache through Python
(the way LiteRT-LM binds it). The bundle is driven the way LiteRT-LM drives it: token embeddings
from the embedder sections, prefill of all but the last prompt token in `prefill_<N>` chunks
(padding rows at position 0 with token 0's embedding), the last prompt token through `decode`.
A round with fewer drafts than the bundle's K is verified by the same `verify` signature with padding
rows (their K/V land beyond every real row's position, where the causal mask hides them and the next
run overwrites them), so it costs one verify call, not K+1 decodes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from edge_mtp import contract as c
from edge_mtp.errors import EdgeMTPError
from edge_mtp.litertlm import read_bundle
from edge_mtp.runtime.export_backend import ExportBackend, check_manifest, check_sha256, place_candidates


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
                  for n in self.signatures[sig]["inputs"] if n.startswith(c.KV_PREFIX)}
        self.kv = kv
        self.inputs, self.outputs, self.shapes, self.dtypes = {}, {}, {}, {}
        for sig, io in self.signatures.items():
            details = {**self.model.get_input_tensor_details(sig), **{
                f"out:{k}": v for k, v in self.model.get_output_tensor_details(sig).items()}}
            self.shapes[sig] = {k: tuple(v["shape"]) for k, v in details.items()}
            self.dtypes[sig] = {k: np.dtype(v["dtype"]) for k, v in details.items()}
            self.inputs[sig] = {n: kv.get(n) or self.model.create_input_buffer_by_name(sig, n) for n in io["inputs"]}
            self.outputs[sig] = {n: kv.get(n) or self.model.create_output_buffer_by_name(sig, n)
                                 for n in io["outputs"]}

    def run(self, sig: str, **feeds: np.ndarray) -> dict[str, np.ndarray]:
        for name, value in feeds.items():
            self.inputs[sig][name].write(value)
        self.model.run_by_name(sig, self.inputs[sig], self.outputs[sig])
        return {n: self._read(sig, n) for n in self.outputs[sig] if not n.startswith(c.KV_PREFIX)}

    def _read(self, sig: str, name: str) -> np.ndarray:
        shape = self.shapes[sig][f"out:{name}"]
        return self.outputs[sig][name].read(int(np.prod(shape)), self.dtypes[sig][f"out:{name}"]).reshape(shape)


class LiteRTBackend(ExportBackend):
    name = "python-litert"

    def __init__(self, bundle_path: Path | str, threads: int = 2, *, xnnpack_flags: int | None = None):
        """`xnnpack_flags`: XNNPACK's flags (e.g. FORCE_FP16 activations) instead of its defaults."""
        from ai_edge_litert.environment import Environment
        from ai_edge_litert.hardware_accelerator import HardwareAccelerator
        from ai_edge_litert.options import CpuOptions, Options

        bundle = read_bundle(bundle_path)
        manifest = check_manifest(bundle.manifest(), str(bundle_path))
        super().__init__(manifest, bundle.manifest_bytes(), bundle.tokenizer_json())
        env = Environment.create()  # one environment, so every graph can bind the same K/V buffers
        cpu = {"num_threads": threads}
        if xnnpack_flags is not None:  # else CpuOptions' default, XNNPACK's own flags
            cpu["xnnpack_flags"] = xnnpack_flags
        options = Options(hardware_accelerators=HardwareAccelerator.CPU, cpu_options=CpuOptions(**cpu))

        def section(kind: str) -> bytes:
            data = bundle.model(kind)
            check_sha256(data, manifest.get("sections", {}).get(kind, {}).get("sha256"), f"{bundle_path} {kind}")
            return data

        self.target = _Graph(section(c.PREFILL_DECODE), env, options)
        for name, shape in manifest["kv_cache"].items():  # start from a zeroed cache
            self.target.kv[name].write(np.zeros(shape, np.float32))
        load = lambda kind: _Graph(section(kind), env, options, self.target.kv)  # noqa: E731
        self.embedder = load(c.EMBEDDER)
        self.per_layer = load(c.PER_LAYER_EMBEDDER) if bundle.find(c.PER_LAYER_EMBEDDER) else None
        self.drafter = load(c.MTP_DRAFTER) if bundle.find(c.MTP_DRAFTER) else None
        self.verify_len = self.target.shapes[c.SIG_VERIFY][c.INPUT_POS][0]
        self.prefill_lengths = sorted(n for s in self.target.signatures if (n := c.prefill_length(s)))

    # ---- graph calls ---------------------------------------------------------------------------------
    def _embed(self, tokens: Sequence[int], per_layer: bool = True) -> dict[str, np.ndarray]:
        """Per-token embedder calls (the embedder signatures take one token, as LiteRT-LM's do)."""
        def rows(graph, sig, output):
            return np.concatenate([graph.run(sig, token_ids=np.array([[t]], np.int32))[output] for t in tokens], axis=1)

        feeds = {c.EMBEDDINGS: rows(self.embedder, c.SIG_EMBEDDER, c.EMBEDDINGS)}
        if self.per_layer and per_layer:
            feeds[c.PER_LAYER_EMBEDDINGS] = rows(self.per_layer, c.SIG_PER_LAYER_EMBEDDER, c.PER_LAYER_EMBEDDINGS)
        return feeds

    def _signature(self, sig: str, tokens: Sequence[int], start: int, rows: int) -> dict[str, np.ndarray]:
        """Run `tokens` at start.. through `sig` (of `rows` rows; the rest padded at position 0)."""
        pad = rows - len(tokens)
        feeds = self._embed(list(tokens) + [0] * pad)
        positions = np.zeros(rows, np.int32)
        positions[: len(tokens)] = np.arange(start, start + len(tokens))
        return self.target.run(sig, input_pos=positions, **feeds)

    def _target(self, tokens: Sequence[int], start: int) -> tuple[np.ndarray, np.ndarray]:
        n = len(tokens)
        if 1 < n <= self.verify_len and start + self.verify_len <= self.context:
            out = self._signature(c.SIG_VERIFY, tokens, start, self.verify_len)
            return out[c.LOGITS][0, :n], out[c.ACTIVATIONS][0, :n]
        if n > self.verify_len:
            raise EdgeMTPError(f"{n - 1} drafts per round, but this bundle verifies at most {self.verify_len - 1} "
                               f"(exported with --draft-len {self.verify_len - 1})")
        return self._decode_each(tokens, start)

    def _prefill(self, tokens: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        done, head = 0, len(tokens) - 1
        while head - done > 0:
            fits = [n for n in self.prefill_lengths if done + n <= self.context]
            if not fits:
                break
            n = next((n for n in fits if n >= head - done), fits[-1])
            self._signature(c.prefill_signature(n), tokens[done:min(head, done + n)], done, n)
            done = min(head, done + n)
        rest = tokens[done:]
        logits, hidden = self._target(rest, done) if len(rest) <= self.verify_len else \
            self._decode_each(rest, done)
        return logits[-1:], hidden[-1:]

    def _decode_each(self, tokens: Sequence[int], start: int) -> tuple[np.ndarray, np.ndarray]:
        steps = [self._signature(c.SIG_DECODE, [t], start + i, 1) for i, t in enumerate(tokens)]
        return (np.concatenate([s[c.LOGITS][0] for s in steps]), np.concatenate([s[c.ACTIVATIONS][0] for s in steps]))

    def _drafter(self, activations: np.ndarray, input_pos: np.ndarray, mask: np.ndarray):
        feeds = dict(activations=activations, input_pos=input_pos, mask=mask)
        if c.SIG_DRAFTER_CANDIDATES in self.drafter.signatures:  # the runtime places the candidates (cheaper)
            out = self.drafter.run(c.SIG_DRAFTER_CANDIDATES, **feeds)
            logits = place_candidates(out[c.CANDIDATE_LOGITS], out[c.CANDIDATE_IDS], self.vocab_size)
            return logits, out[c.PROJECTED_ACTIVATIONS][0, 0]
        out = self.drafter.run(c.SIG_DRAFTER, **feeds)
        return out[c.LOGITS][0, 0], out[c.PROJECTED_ACTIVATIONS][0, 0]
