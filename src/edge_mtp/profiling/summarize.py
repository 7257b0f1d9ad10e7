"""Summarize a results folder: one row per run (a folder holding bench.json), MTP on vs off.

Layout (what profiling/android/run_energy.sh and profiling/ios/record.sh write):

  DIR/<run>/bench.json         required, edge-mtp-bench/1
  DIR/<run>/counters.csv       Perfetto counter export (Android)
  DIR/<run>/batterystats.txt   dumpsys batterystats --checkin (Android)
  DIR/<run>/signposts.xml      xctrace os-signpost-interval export (iOS)
  DIR/<run>/metrickit.json     or DIR/metrickit.json: MXMetricPayload (iOS); signposts by category
"""

from __future__ import annotations

import json
from pathlib import Path

from edge_mtp.atomic import atomic_write
from edge_mtp.errors import EdgeMTPError
from edge_mtp.profiling.batterystats import parse_batterystats
from edge_mtp.profiling.bench import parse_bench
from edge_mtp.profiling.energy import RunEnergy, compare, run_energy
from edge_mtp.profiling.metrickit import parse_metrickit
from edge_mtp.profiling.perfetto import parse_counters
from edge_mtp.profiling.xctrace import interval_summary, signpost_intervals

APP_PACKAGE = "dev.edgemtp.demo"


def _optional(path: Path, parse):
    return parse(path) if path.is_file() else None


def run_dirs(root: Path) -> list[Path]:
    dirs = ([root] if (root / "bench.json").is_file() else []) + sorted(
        p for p in root.iterdir() if p.is_dir() and (p / "bench.json").is_file())
    if not dirs:
        raise EdgeMTPError(f"{root}: no bench.json in it or in any folder below it")
    return dirs


def summarize_run(d: Path, root: Path, package: str = APP_PACKAGE) -> tuple[RunEnergy, dict]:
    bench = parse_bench(d / "bench.json")
    stats = _optional(d / "batterystats.txt", parse_batterystats)
    run = run_energy(bench, _optional(d / "counters.csv", parse_counters), stats)
    row = {"run": d.name, "label": bench.label, "mtp": bench.mtp, "draft_len": bench.draft_len,
           "tokens": bench.tokens, "wall_time_s": bench.wall_time_s,
           "tokens_per_s": bench.tokens / bench.wall_time_s, "energy_j": run.energy_j,
           "energy_source": run.source, "j_per_token": run.j_per_token(), "mean_power_w": run.mean_power_w()}
    if stats is not None:
        row["batterystats"] = {"discharge_mah": stats.discharge_mah, "app_estimate_mah": stats.app_mah(package),
                               "computed_drain_mah": stats.computed_drain_mah,
                               "battery_realtime_s": stats.battery_realtime_ms / 1e3}
    if (d / "signposts.xml").is_file():
        row["signposts"] = interval_summary(signpost_intervals(d / "signposts.xml"))
    mk = _optional(d / "metrickit.json", parse_metrickit) or _optional(root / "metrickit.json", parse_metrickit)
    if mk is not None:
        sp = mk.signposts.get(("mtp_on" if bench.mtp else "mtp_off", "generate"))
        if sp is not None and sp.cpu_time_s is not None:
            row["metrickit_cpu_s_per_token"] = sp.cpu_time_s / bench.tokens
            row["metrickit_generate_count"] = sp.count
        else:
            run.notes.append(f"{mk.path}: no `generate` signpost metric in this run's category")
    row["notes"] = run.notes
    return run, row


def summarize(root: Path | str, package: str = APP_PACKAGE) -> dict:
    root = Path(root)
    if not root.is_dir():
        raise EdgeMTPError(f"{root}: not a folder of profiling results")
    runs, rows = zip(*(summarize_run(d, root, package) for d in run_dirs(root)), strict=True)
    offs = [r for r in runs if not r.bench.mtp]
    ons = [r for r in runs if r.bench.mtp]
    comparison = {r.bench.label: compare(offs[0], r) for r in ons} if offs else {}
    return {"format": "edge-mtp-energy-summary/1", "runs": list(rows), "mtp_on_vs_off": comparison}


def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def print_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="Energy per generated token")
    for col in ("run", "K", "tokens", "tok/s", "J", "J/token", "W", "source", "CPU s/tok"):
        table.add_column(col, justify="left" if col in ("run", "source") else "right", no_wrap=True)
    for r in summary["runs"]:
        src = r["energy_source"]
        table.add_row(r["run"], str(r["draft_len"]) if r["mtp"] else "off", str(r["tokens"]),
                      _fmt(r["tokens_per_s"], ".2f"), _fmt(r["energy_j"].get(src), ".2f"),
                      _fmt(r["j_per_token"], ".4f"), _fmt(r["mean_power_w"], ".2f"), src or "none",
                      _fmt(r.get("metrickit_cpu_s_per_token"), ".4f"))
    console = Console()
    console.print(table)
    for label, per_source in summary["mtp_on_vs_off"].items():
        for s, c in per_source.items():
            console.print(escape(f"{label} vs MTP off, {s}: {c['j_per_token_on']:.4f} vs {c['j_per_token_off']:.4f} "
                                 f"J/token, x{c['ratio_on_off']:.3f} ({c['saving_pct']:+.1f}% saved)"))
    for r in summary["runs"]:
        for note in r["notes"]:
            console.print(f"[yellow]{escape(r['run'] + ': ' + note)}[/yellow]")


def write_summary(summary: dict, path: Path | str) -> None:
    with atomic_write(path) as f:
        f.write(json.dumps(summary, indent=2) + "\n")
