"""Held-out acceptance of a drafter: the real speculative loop (PyTorch backend, greedy) per draft length K.

Per K and prompt category: acceptance per draft slot (share of drafting rounds that offered slot k and had
drafts 1..k accepted, as in the loop's summary), mean tokens per decode round, target passes, and whether
the output equals plain greedy decoding (it must: speculation never changes greedy tokens).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from edge_mtp.model import Gemma4Drafter, Gemma4Target, TargetConfig
from edge_mtp.runtime import Generation, LoopConfig, generate
from edge_mtp.runtime.backend import Backend
from edge_mtp.runtime.torch_backend import TorchBackend


def torch_backends(target: Gemma4Target, tcfg: TargetConfig, drafter: Gemma4Drafter | None):
    """An `open_backend(context)` for `acceptance_report`: a fresh PyTorch backend of just enough slots."""
    return lambda context: TorchBackend(target, tcfg, drafter, context=context)


def _run(open_backend, prompt: list[int], k: int, new: int) -> Generation:
    return generate(open_backend(len(prompt) + new + k + 1), prompt, LoopConfig(draft_len=k, max_new_tokens=new))


def aggregate(gens: Sequence[Generation], k: int) -> dict:
    """Acceptance per slot and mean tokens per decode round over several generations."""
    drafting = [r for g in gens for r in g.rounds if r.drafts]
    per_slot = []
    for slot in range(k):
        offered = [r for r in drafting if len(r.drafts) > slot]
        per_slot.append(round(sum(r.accepted > slot for r in offered) / len(offered), 4) if offered else 0.0)
    decode = [r for g in gens for r in g.rounds[1:]]
    emitted = sum(len(r.emitted) for r in decode)
    return {"draft_len": k, "acceptance_per_slot": per_slot,
            "mean_tokens_per_round": round(emitted / len(decode), 4) if decode else 0.0,
            "target_passes": sum(len(g.rounds) for g in gens), "tokens": sum(len(g.tokens) for g in gens)}


def acceptance_report(open_backend: Callable[[int], Backend], prompts: dict[str, list[list[int]]],
                      ks: Sequence[int], new_tokens: int) -> dict:
    """{"rows": [per category and K], "all": [per K over every prompt], "identical_to_plain": bool}.

    `open_backend(context)` gives a backend with at least `context` slots (a PyTorch one, `torch_backends`,
    or an exported bundle's, which has its own fixed context)."""
    plain = {c: [_run(open_backend, p, 0, new_tokens).tokens for p in ps] for c, ps in prompts.items()}
    rows, every, identical = [], {k: [] for k in ks}, True
    for category, items in prompts.items():
        for k in ks:
            gens = [_run(open_backend, p, k, new_tokens) for p in items]
            identical &= [g.tokens for g in gens] == plain[category]
            every[k] += gens
            rows.append({"category": category, **aggregate(gens, k)})
    return {"rows": rows, "all": [{"category": "all", **aggregate(every[k], k)} for k in ks],
            "identical_to_plain": identical, "new_tokens": new_tokens,
            "prompts": {c: len(ps) for c, ps in prompts.items()}}


def heldout_prompts(windows, count: int, length: int) -> dict[str, list[list[int]]]:
    """The first `length` tokens of up to `count` held-out windows (they start with <bos>)."""
    step = max(1, len(windows) // max(1, count))
    return {"heldout": [windows[i, :length].tolist() for i in range(0, len(windows), step)[:count]]}


def text_prompts(prompts: dict[str, list[str]], tokenizer) -> dict[str, list[list[int]]]:
    """Encode {category: [text]} with the target's tokenizer (its post-processor adds <bos>)."""
    return {c: [tokenizer.encode(t).ids for t in texts] for c, texts in prompts.items()}


def table_rows(report: dict) -> list[list[str]]:
    """Rows of the printed table: category, K, acceptance per slot, tokens per round."""
    out = []
    for r in report["rows"] + (report["all"] if len(report["prompts"]) > 1 else []):
        slots = "/".join(f"{a:.2f}" for a in r["acceptance_per_slot"])
        out.append([r["category"], str(r["draft_len"]), slots, f"{r['mean_tokens_per_round']:.2f}"])
    return out
