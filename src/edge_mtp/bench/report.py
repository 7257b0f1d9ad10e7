"""Outputs of `bench`: a terminal table, the JSON result, PNG plots and a self-contained HTML report."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from edge_mtp.atomic import atomic_write, require_parent

PLOTS = ("acceptance", "tok_s", "latency", "predicted")
COLUMNS = ("K", "TTFT ms", "prefill tok/s", "decode tok/s", "tok/round", "accept/slot", "speedup",
           "predicted", "ms/round d+v+o", "target GB/s (% bw)")


def _f(value, fmt: str = ".2f") -> str:
    return "-" if value is None else format(value, fmt)


def row_cells(r: dict) -> list[str]:
    slots = "/".join(f"{a:.2f}" for a in r["acceptance_per_slot"]) or "-"
    ms = lambda key: 1000 * r[key]  # noqa: E731
    split = "+".join(f"{round(ms(k), 2) + 0.0:.2f}" for k in ("round_draft_s", "round_verify_s", "round_other_s"))
    share = 100 * r['bandwidth_fraction'] if 'bandwidth_fraction' in r else None
    gbs = f"{_f(r.get('target_gb_s'), '.1f')} ({_f(share, '.0f')}%)"
    return [str(r["draft_len"]), _f(r["ttft_ms"]), _f(r["prefill_tok_s"], ".0f"), _f(r["decode_tok_s"], ".1f"),
            _f(r["mean_tokens_per_round"]), slots, _f(r["speedup"]), _f(r.get("predicted_speedup")), split, gbs]


def category_cells(r: dict) -> list[str]:
    slots = "/".join(f"{a:.2f}" for a in r["acceptance_per_slot"]) or "-"
    return [r["category"], str(r["draft_len"]), _f(r["decode_tok_s"], ".1f"), _f(r["mean_tokens_per_round"]),
            slots, _f(r["speedup"])]


CATEGORY_COLUMNS = ("category", "K", "decode tok/s", "tok/round", "accept/slot", "speedup")


def headline(result: dict) -> list[str]:
    m, b = result["machine"], result["bytes_per_target_step"]
    setup = (f"{result['bundle']} ({result['backend']}, {result['quantization']}, "
             f"export K={result['export_draft_len']}, context {result['context']}, {result['model_id']})")
    load = f"load average (1/5/15 min) {_load(m['load_avg_start'])} at start, {_load(m['load_avg_end'])} at end"
    mb = lambda n: f"{n / 1e6:.2f}"  # noqa: E731
    memory = (f"memory bandwidth {m['memory_bandwidth_gb_s']:.1f} GB/s ({m['bandwidth_method']}); bytes per "
              f"target step {mb(b['total'])} MB (weights {mb(b['weights'])} + K/V {mb(b['kv_cache'])})")
    best = f"best K measured: {result['best_k']}; best K predicted: {result['best_k_predicted']}"
    lines = [setup, f"{m['cpu']}, {m['cores']} cores; {load}", memory, best]
    export_k = result["export_draft_len"]
    fixed = [r["draft_len"] for r in result["results"] if r["draft_len"] != "auto"]
    smaller = [k for k in fixed if 0 < k < export_k]
    if smaller and result["backend"] != "onnx":  # ONNX's target graph takes any T
        lines.append(f"K={','.join(map(str, smaller))}: below the bundle's K={export_k}, so each round runs the "
                     f"K={export_k} verify signature with padding rows (it costs a full verify)")
    return lines + auto_lines(result)


def auto_lines(result: dict) -> list[str]:
    """`--draft-len auto` against K = 0 and the best fixed K, overall and per category, and its costs."""
    auto = result.get("auto")
    if not auto:
        return []
    row = next(r for r in result["results"] if r["draft_len"] == "auto")
    p = row["draft_policy"]
    verify = "/".join(f"{v:.2f}" for v in p["verify_ms"])
    costs = (f"(medians) first draft {p['first_draft_ms']:.2f} ms, next drafts {p['draft_ms']:.2f} ms, "
             f"verify(1..{p['max_draft_len'] + 1}) {verify} ms")
    parts = [f"{c}: {a['vs_k0']:.3f} of K=0 (paired {_f(a['vs_k0_paired'], '.3f')}), {a['vs_best_fixed']:.3f} of best "
             f"K={a['best_fixed_k']} (paired {_f(a['vs_best_fixed_paired'], '.3f')})" for c, a in auto["categories"].items()]
    total = (f"auto: {auto['decode_tok_s']:.1f} tok/s = {auto['vs_k0']:.3f} x K=0, {auto['vs_best_fixed']:.3f} x "
             f"best fixed K={auto['best_fixed_k']}; medians of paired generations {_f(auto['vs_k0_paired'], '.3f')} x K=0, "
             f"{_f(auto['vs_best_fixed_paired'], '.3f')} x best; rounds per K {row['rounds_per_k']}, probes {row['probes']}; "
             f"costs {costs}")
    return [total, "auto per category: " + "; ".join(parts)]


def _load(values) -> str:
    return " ".join(f"{v:.2f}" for v in values)


def print_tables(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    for line in headline(result):
        console.print(line, markup=False, highlight=False)
    for title, columns, cells, rows in (
            ("per draft length K (all prompts)", COLUMNS, row_cells, result["results"]),
            ("per prompt category", CATEGORY_COLUMNS, category_cells, result["categories"])):
        table = Table(title=title)
        for column in columns:
            table.add_column(column)
        for r in rows:
            table.add_row(*cells(r))
        console.print(table)


def markdown_table(result: dict) -> str:
    """The main table as Markdown (what benchmarks/README.md shows)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row_cells(r)) + " |" for r in result["results"]]
    return "\n".join(lines)


def write_json(result: dict, path: Path) -> None:
    with atomic_write(path) as f:
        json.dump(result, f, indent=1)


def write_report(result: dict, directory: Path) -> list[Path]:
    """DIR/<plot>.png for each plot and DIR/report.html (the tables and the PNGs embedded as base64)."""
    from edge_mtp.bench import plots

    directory = require_parent(directory)
    directory.mkdir(exist_ok=True)  # DIR itself is created, never its parents
    pngs = [plots.save(name, result, directory / f"{name}.png") for name in PLOTS]
    page = directory / "report.html"
    with atomic_write(page) as f:
        f.write(html_page(result, pngs))
    return [*pngs, page]


def _html_table(columns, rows) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def html_page(result: dict, pngs: list[Path]) -> str:
    images = "".join(f'<figure><img alt="{p.stem}" src="data:image/png;base64,'
                     f'{base64.b64encode(p.read_bytes()).decode()}"><figcaption>{p.stem}</figcaption></figure>'
                     for p in pngs)
    intro = "".join(f"<p>{html.escape(line)}</p>" for line in headline(result))
    return ("<!doctype html><html><head><meta charset='utf-8'><title>edge-mtp bench</title><style>"
            "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
            "td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}img{max-width:640px}"
            "figure{display:inline-block;margin:0.5em}</style></head><body>"
            f"<h1>edge-mtp bench</h1>{intro}<p>{html.escape(result['formula'])}</p>"
            f"<h2>Per draft length K (all prompts)</h2>{_html_table(COLUMNS, map(row_cells, result['results']))}"
            f"<h2>Per prompt category</h2>{_html_table(CATEGORY_COLUMNS, map(category_cells, result['categories']))}"
            f"<h2>Plots</h2>{images}<p>Timings on a shared machine are noisy; see the load averages above. "
            "No number here is a pass/fail test.</p></body></html>")
