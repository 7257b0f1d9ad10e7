"""matplotlib plots of a bench result (Agg backend, no display): one function per PNG."""

from __future__ import annotations

from pathlib import Path


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(6, 4), dpi=100)


def acceptance(result: dict, ax) -> None:
    for r in _fixed(result["results"]):
        if r["draft_len"]:
            slots = range(1, r["draft_len"] + 1)
            ax.plot(slots, r["acceptance_per_slot"], marker="o", label=f"K={r['draft_len']}")
    ax.set(xlabel="draft slot k", ylabel="P(drafts 1..k accepted)", ylim=(-0.02, 1.02),
           title="acceptance per draft slot (all prompts)")


def _fixed(rows: list[dict]) -> list[dict]:
    """The fixed-K rows (an `auto` row has no single K)."""
    return [r for r in rows if r["draft_len"] != "auto"]


def tok_s(result: dict, ax) -> None:
    fixed = _fixed(result["results"])
    ks = [r["draft_len"] for r in fixed]
    ax.plot(ks, [r["decode_tok_s"] for r in fixed], marker="o", linewidth=2, label="all prompts")
    base = fixed[0]["decode_tok_s"]
    pred = [(r["draft_len"], base * r["predicted_speedup"]) for r in fixed if "predicted_speedup" in r]
    ax.plot(*zip(*pred), linestyle="--", color="gray", label="predicted (all)")
    if result.get("auto"):
        ax.axhline(result["auto"]["decode_tok_s"], color="black", linestyle=":", label="auto (all)")
    for category in dict.fromkeys(r["category"] for r in result["categories"]):
        rows = _fixed([r for r in result["categories"] if r["category"] == category])
        ax.plot([r["draft_len"] for r in rows], [r["decode_tok_s"] for r in rows], marker=".", alpha=0.6,
                label=category)
    ax.set(xlabel="draft length K", ylabel="decode tokens/s", title="decode rate vs K", xticks=ks)


def latency(result: dict, ax) -> None:
    rows = result["results"]
    ks = [str(r["draft_len"]) for r in rows]
    bottom = [0.0] * len(rows)
    for key, label in (("round_draft_s", "drafter steps"), ("round_verify_s", "target verify"),
                       ("round_other_s", "loop overhead")):
        ms = [1000 * r[key] for r in rows]
        ax.bar(ks, ms, bottom=bottom, label=label)
        bottom = [b + m for b, m in zip(bottom, ms)]
    ax.set(xlabel="draft length K", ylabel="ms per decode round", title="latency breakdown per round")


def predicted(result: dict, ax) -> None:
    for r in result["results"]:
        if "predicted_curve" in r:
            line, = ax.plot(result["acceptance_curve"], r["predicted_curve"], label=f"K={r['draft_len']}")
            rates = r["conditional_acceptance"]
            measured = sum(rates) / len(rates) if rates else 0.0
            ax.plot([measured], [r["speedup"]], marker="o", color=line.get_color())
    ax.axhline(1.0, color="gray", linewidth=0.8)
    ax.set(xlabel="per-slot acceptance rate a (same for every slot)", ylabel="speedup vs K=0",
           title="predicted speedup from measured costs (dots: measured)")


PLOTTERS = {"acceptance": acceptance, "tok_s": tok_s, "latency": latency, "predicted": predicted}


def save(name: str, result: dict, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig, ax = _figure()
    PLOTTERS[name](result, ax)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
