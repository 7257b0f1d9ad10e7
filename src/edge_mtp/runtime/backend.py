"""What the speculative loop needs from a backend (PyTorch now; LiteRT and ONNX Runtime implement the same).

A backend owns the target's K/V cache (slot = absolute position, never cleared) and runs three graphs:
target prefill, target verify over T tokens, and one drafter step. Arrays cross the boundary as numpy
float32 so the loop is the same for every backend (docs/loop.md#the-backend-interface).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

from edge_mtp.runtime.views import DrafterViews


@dataclass
class TargetStep:
    logits: np.ndarray  # [T, V] (prefill: the last position only, [1, V])
    hidden: np.ndarray  # [T, H] final normed hidden state (what the drafter reads)


class Backend(Protocol):
    name: str  # trace `implementation`, e.g. "python-torch"
    model_id: str  # trace `model`
    context: int  # K/V slots; positions 0..context-1
    sliding_window: int
    stop_ids: tuple[int, ...]

    def prefill(self, tokens: Sequence[int]) -> TargetStep:
        """Run the prompt at positions 0..P-1 (chunking is the backend's business)."""

    def verify(self, tokens: Sequence[int], start: int) -> TargetStep:
        """Run `tokens` at positions start..start+T-1 and return every position's logits and hidden."""

    def rollback(self, length: int) -> None:
        """Only the first `length` positions are valid now (static caches just remember the number)."""

    def draft(self, token: int, carry: np.ndarray, position: int, views: DrafterViews
              ) -> tuple[np.ndarray, np.ndarray]:
        """One drafter step: (logits [V], next carry [H])."""
