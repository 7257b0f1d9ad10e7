"""What the LiteRT and ONNX Runtime backends share; each implements only its graph calls.

Both run an `edge-export` output (docs/bundle.md): the manifest gives the stop ids, window, vocabulary,
K and context; the model id is the manifest's hash; the tokenizer travels as `tokenizer.json` bytes.
The base checks positions (a target run must start where the valid cache ends), assembles the drafter's
inputs (embedding of the last token, carry, `input_pos`/`mask` for the round's K/V view), and refuses
non-finite logits, which a corrupted file or an fp16 overflow produce (a loop would happily "accept"
NaN argmaxes).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from edge_mtp import contract as c
from edge_mtp.errors import EdgeMTPError
from edge_mtp.runtime.backend import TargetStep
from edge_mtp.runtime.views import DrafterViews, mask_inputs

REQUIRED = ("format", "options", "kv_cache", "stop_ids", "sliding_window", "vocab_size", "draft_len", "context")


def check_manifest(manifest, where: str) -> dict:
    """The manifest as a dict with every field the runtimes read, or a one-line error naming the field."""
    if not isinstance(manifest, dict) or manifest.get("format") != c.MANIFEST_FORMAT:
        raise EdgeMTPError(f"{where}: not an {c.MANIFEST_FORMAT} manifest")
    missing = [k for k in REQUIRED if k not in manifest]
    if missing:
        raise EdgeMTPError(f"{where}: field '{missing[0]}' is missing")
    return manifest


def check_sha256(data_or_path, expected: str | None, where: str) -> None:
    """A section's or graph's bytes must hash to what the manifest recorded at export."""
    import hashlib

    if expected is None:
        raise EdgeMTPError(f"{where}: the manifest records no sha256 for it")
    actual = hashlib.sha256(data_or_path).hexdigest() if isinstance(data_or_path, bytes) else \
        c.file_sha256(data_or_path)
    if actual != expected:
        raise EdgeMTPError(f"{where}: sha256 {actual[:16]}... does not match the manifest's {expected[:16]}... "
                           "(file damaged or modified after export)")


def _finite(values: np.ndarray, what: str, position: int) -> np.ndarray:
    if not np.isfinite(values).all():
        raise EdgeMTPError(f"{what} at position {position} are not finite (NaN/inf): the export is damaged or "
                           "its activations overflowed")
    return values


def place_candidates(scores: np.ndarray, ids: np.ndarray, vocab: int) -> np.ndarray:
    """Full-vocabulary logits [V] from a centroid head's candidates, the numbers the graph's own placement
    gives (`edge_mtp.model.drafter.scatter_candidates`): min(candidates) - 1 for every other token."""
    scores = scores.reshape(-1).astype(np.float32, copy=False)
    logits = np.full(vocab, scores.min() - np.float32(1.0), np.float32)
    logits[ids.reshape(-1)] = scores
    return logits


class ExportBackend:
    """Base of the backends that run an export. Subclasses set `self.drafter` (None without a drafter
    graph) and implement `_embed`, `_target`, `_prefill` and `_drafter`."""

    name = "python-export"
    verify_len: int

    def __init__(self, manifest: dict, manifest_bytes: bytes, tokenizer_json: bytes | None):
        self.manifest = manifest
        self.model_id = c.model_id(manifest_bytes)
        self.stop_ids = tuple(manifest["stop_ids"])
        self.sliding_window = int(manifest["sliding_window"])
        self.vocab_size = int(manifest["vocab_size"])
        self.draft_len = int(manifest["draft_len"])
        self.context = int(manifest["context"])
        self.tokenizer_json = tokenizer_json
        self.length = 0

    # ---- graph calls (subclasses) ---------------------------------------------------------------------
    def _embed(self, tokens: Sequence[int], per_layer: bool = True) -> dict[str, np.ndarray]:
        """{embeddings [1,T,H], per_layer_embeddings [1,T,L,P] when the model has them and `per_layer`}."""
        raise NotImplementedError

    def _target(self, tokens: Sequence[int], start: int) -> tuple[np.ndarray, np.ndarray]:
        """(logits [T,V], hidden [T,H]) of `tokens` at positions start.. (cache written in place)."""
        raise NotImplementedError

    def _prefill(self, tokens: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(logits [1,V], hidden [1,H]) of the prompt's last position."""
        raise NotImplementedError

    def _drafter(self, activations: np.ndarray, input_pos: np.ndarray, mask: np.ndarray):
        """(logits [V], carry [H]) of one drafter step."""
        raise NotImplementedError

    # ---- Backend interface ------------------------------------------------------------------------------
    def _check_run(self, count: int, start: int) -> None:
        if start != self.length:
            raise RuntimeError(f"target run at position {start}, but {self.length} positions are valid")
        if start + count > self.context:
            raise EdgeMTPError(f"{start + count} positions exceed the export's context of {self.context}")

    def prefill(self, tokens: Sequence[int]) -> TargetStep:
        self.length = 0
        self._check_run(len(tokens), 0)
        logits, hidden = self._prefill(tokens)
        self.length = len(tokens)
        return TargetStep(_finite(logits, "prefill logits", len(tokens) - 1), hidden)

    def verify(self, tokens: Sequence[int], start: int) -> TargetStep:
        self._check_run(len(tokens), start)
        logits, hidden = self._target(tokens, start)
        self.length = start + len(tokens)
        return TargetStep(_finite(logits, "target logits", start), hidden)

    def rollback(self, length: int) -> None:
        self.length = length

    def draft(self, token: int, carry: np.ndarray, position: int, views: DrafterViews):
        if self.drafter is None:
            raise EdgeMTPError("this export has no drafter graph; use --draft-len 0")
        input_pos, mask = mask_inputs(views, position, self.context, self.sliding_window)
        embedding = self._embed([token], per_layer=False)[c.EMBEDDINGS]  # the drafter has no per-layer input
        activations = np.concatenate([embedding, carry.reshape(1, 1, -1).astype(np.float32)], axis=-1)
        logits, carry = self._drafter(activations, input_pos, mask)
        return _finite(logits, "drafter logits", position), carry
