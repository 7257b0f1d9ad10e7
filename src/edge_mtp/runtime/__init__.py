"""The speculative decoding reference runtime: one loop, pluggable backends, step traces."""

from edge_mtp.runtime.loop import Generation, LoopConfig, Round, generate
from edge_mtp.runtime.sampling import SamplingConfig
from edge_mtp.runtime.trace import read_trace, trace_lines, write_trace
from edge_mtp.runtime.views import KV_VIEWS, DrafterViews, drafter_views

__all__ = [
    "KV_VIEWS", "DrafterViews", "Generation", "LoopConfig", "Round", "SamplingConfig", "drafter_views",
    "generate", "read_trace", "trace_lines", "write_trace",
]
