"""`run_bench`: open the export, measure the machine, sweep K over the prompts, and assemble the result."""

from __future__ import annotations

import datetime
import os
import platform
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from statistics import median

from edge_mtp.bench import predict
from edge_mtp.bench.bandwidth import copy_bandwidth
from edge_mtp.bench.measure import Sample, TimedBackend, measure_native, measure_python
from edge_mtp.bench.prompts import load_prompts
from edge_mtp.bench.stats import paired_ratio, summarize
from edge_mtp.errors import EdgeMTPError
from edge_mtp.runtime.draftlen import AUTO

FORMAT = "edge-mtp-bench-sweep/1"
RUN_FORMAT = "edge-mtp-bench/1"  # each K's run, as the demo apps write it (profiling/README.md)
CURVE = [i / 20 for i in range(21)]  # constant per-slot acceptance rates for the predicted-speedup curve


@dataclass(frozen=True)
class BenchConfig:
    bundle: Path
    backend: str | None = None  # litert | onnx | native; None = by the export's kind
    prompts: str = "builtin"
    draft_lens: tuple[int | str, ...] = (0, 1, 2, 3, 4)  # and "auto" (`--draft-len auto`, up to the export's K)
    max_new_tokens: int = 64
    repetitions: int = 1
    warmup: int = 1
    threads: int = 2
    bandwidth_mib: int = 512


class _Export:
    """What bench needs from an export: metadata, a codec, and a measure(prompt, k, new, category)."""

    def __init__(self, cfg: BenchConfig):
        from edge_mtp.runtime.open import export_kind

        kind = export_kind(cfg.bundle)
        self.backend = cfg.backend or ("onnx" if kind == "onnx" else "litert")
        if (self.backend == "onnx") != (kind == "onnx"):
            raise EdgeMTPError(f"--backend {self.backend} cannot run {cfg.bundle} (a {kind} export)")
        if self.backend == "native":
            from edge_mtp.litertlm import read_bundle

            bundle = read_bundle(cfg.bundle)
            self.manifest, self.tokenizer_json = bundle.manifest(), bundle.tokenizer_json()
            self.model_id, self.runner = bundle.model_id(), None
        else:
            from edge_mtp.runtime.open import open_export

            self.runner = TimedBackend(open_export(cfg.bundle, cfg.threads))
            self.manifest, self.tokenizer_json = self.runner.manifest, self.runner.tokenizer_json
            self.model_id = self.runner.model_id
        self.path, self.threads = cfg.bundle, cfg.threads

    def measure(self, prompt: list[int], k: int | str, new: int, category: str) -> Sample:
        """One generation. `auto` times its costs right before (untimed), as `run --draft-len auto` does; the
        C CLI does that itself."""
        if self.runner is None:
            return measure_native(self.path, prompt, k, new, category, self.threads)
        if k == AUTO:
            from edge_mtp.runtime.draftlen import AutoDraft, calibrate

            costs = calibrate(self.runner, int(self.manifest["draft_len"]), token=prompt[0])
            return measure_python(self.runner, prompt, k, new, category, AutoDraft(costs))
        return measure_python(self.runner, prompt, k, new, category)


def step_bytes(path: Path, manifest: dict, backend: str) -> dict:
    """Bytes a target decode step reads: the target's weights (the tied LM head reads the whole
    embedding) + the whole K/V cache. Same as `edge-mtp inspect`. The cache term is an upper bound where
    sliding layers read windows (LiteRT and ONNX exports with a context past the window,
    docs/tooling.md#windowed-sliding-reads): E2B at context 2048 reads 30 of its 72 MiB of K/V less, 2.4 %
    of the step."""
    kv = sum(4 * int(n) for n in (_prod(s) for s in manifest["kv_cache"].values()))
    if backend == "onnx":
        weights = int(manifest["graphs"]["target"]["bytes"])
    else:
        from edge_mtp.litertlm import read_bundle
        from edge_mtp.contract import PREFILL_DECODE, tflite_weight_bytes

        bundle = read_bundle(path)
        weights = sum(tflite_weight_bytes(bundle.view(bundle.find(PREFILL_DECODE))).values())
    return {"weights": weights, "kv_cache": kv, "total": weights + kv}


def _prod(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(bandwidth_mib: int) -> dict:
    return {
        "cpu": cpu_name(), "cores": os.cpu_count(),
        "system": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "load_avg_start": list(os.getloadavg()),
        "memory_bandwidth_gb_s": copy_bandwidth(bandwidth_mib),
        "bandwidth_method": f"numpy copy of {bandwidth_mib} MiB, read + write bytes, best of 5, one thread",
    }


def _codec(export: _Export, where: str):
    if export.tokenizer_json is None:
        return None
    from edge_mtp.runtime.tokenizer import TextCodec

    data = export.tokenizer_json
    return TextCodec.from_json(data if isinstance(data, bytes) else data.encode(), where)


def sweep(export: _Export, prompts: dict, cfg: BenchConfig) -> dict[int, list[Sample]]:
    """`warmup` unmeasured generations per K, then every prompt and repetition with each K in turn, so
    that load changes on a shared machine hit every K alike; every other repetition takes the Ks in
    reverse order, so that what a generation inherits from the one before it (caches, the clock) does
    not favour one K."""
    first = next(iter(prompts.values()))[0]
    for k in cfg.draft_lens:
        for _ in range(cfg.warmup):
            export.measure(first, k, cfg.max_new_tokens, "warmup")
    samples: dict[int, list[Sample]] = {k: [] for k in cfg.draft_lens}
    for category, items in prompts.items():
        for prompt in items:
            for rep in range(cfg.repetitions):
                for k in cfg.draft_lens[:: -1 if rep % 2 else 1]:
                    samples[k].append(export.measure(prompt, k, cfg.max_new_tokens, category))
    return samples


def _predictions(row: dict, base: dict, bytes_total: int, bandwidth: float) -> None:
    """Speedup (measured and predicted), break-even acceptance and achieved bandwidth, into `row`. A verify
    is one target call for any K up to the bundle's (LiteRT pads the rows of a shorter one; ONNX has a
    dynamic token axis), so it reads the weights once."""
    k, t_decode = row["draft_len"], base["t_verify_s"]
    row["speedup"] = row["decode_tok_s"] / base["decode_tok_s"]
    if k == AUTO:  # K varies by round: no single verify length, no prediction
        return
    if row["t_verify_s"]:
        row["target_gb_s"] = bytes_total / row["t_verify_s"] / 1e9
        row["bandwidth_fraction"] = row["target_gb_s"] / bandwidth
    if k == 0:
        row["predicted_speedup"] = 1.0
    if k == 0 or row["t_draft_s"] is None or row["t_verify_s"] is None:
        return
    args = (row["t_draft_s"], row["t_verify_s"], t_decode)
    row["predicted_speedup"] = predict.predicted_speedup(row["conditional_acceptance"], *args)
    row["predicted_curve"] = [predict.predicted_speedup([a] * k, *args) for a in CURVE]
    row["break_even_acceptance"] = predict.break_even(k, *args)


def _run_record(row: dict, cfg: BenchConfig, export: _Export, device: str) -> dict:
    auto = row["draft_len"] == AUTO
    return {"format": RUN_FORMAT, "platform": f"host-{export.backend}", "device": device,
            "bundle": Path(cfg.bundle).name, "mtp": auto or row["draft_len"] > 0,
            "draft_len": int(export.manifest["draft_len"]) if auto else row["draft_len"],
            **({"draft_policy": AUTO} if auto else {}),
            "max_new_tokens": cfg.max_new_tokens, "repetitions": cfg.repetitions, "warmup": cfg.warmup,
            "tokens_generated": row["tokens_generated"], "wall_time_s": row["wall_time_s"]}


def _summarize(samples: list[Sample], k: int | str, k_max: int) -> dict:
    """A row; an auto row has its acceptance over full rounds of K_max, the K it chose and its probes."""
    if k != AUTO:
        return summarize(samples, k)
    row = summarize(samples, k_max)
    chosen = Counter(r["drafts"] for s in samples for r in s.rounds)
    policy = dict(samples[0].policy)  # the parameters; each generation timed its own costs: their medians
    for key in ("first_draft_ms", "draft_ms"):
        policy[key] = median(s.policy[key] for s in samples)
    policy["verify_ms"] = [median(s.policy["verify_ms"][t] for s in samples) for t in range(k_max + 1)]
    row.update(draft_len=AUTO, rounds_per_k={str(n): chosen[n] for n in sorted(chosen)},
               probes=sum(s.probes for s in samples), draft_policy=policy)
    return row


def _auto_vs_fixed(rows: dict, samples: dict) -> dict | None:
    """decode tok/s of auto against K = 0 and against the best fixed K (the acceptance criteria), as ratios of
    the totals and as medians of paired generations (stats.py)."""
    if AUTO not in rows:
        return None
    fixed = [r for k, r in rows.items() if k != AUTO]
    best = max(fixed, key=lambda r: r["decode_tok_s"])
    auto = rows[AUTO]["decode_tok_s"]
    return {"decode_tok_s": auto, "vs_k0": auto / rows[0]["decode_tok_s"], "best_fixed_k": best["draft_len"],
            "vs_best_fixed": auto / best["decode_tok_s"],
            "vs_k0_paired": paired_ratio(samples[AUTO], samples[0]),
            "vs_best_fixed_paired": paired_ratio(samples[AUTO], samples[best["draft_len"]])}


def analyze(samples: dict[int | str, list[Sample]], export: _Export, cfg: BenchConfig, info: dict,
            nbytes: dict) -> dict:
    k_max = int(export.manifest["draft_len"])
    rows = {k: _summarize(s, k, k_max) for k, s in samples.items()}
    for k, row in rows.items():
        _predictions(row, rows[0], nbytes["total"], info["memory_bandwidth_gb_s"])
        row["run"] = _run_record(row, cfg, export, info["cpu"])
    categories, auto_categories = [], {}
    for category in dict.fromkeys(s.category for s in samples[0]):
        per_k = {k: _summarize([s for s in ss if s.category == category], k, k_max) for k, ss in samples.items()}
        for k, row in per_k.items():
            row["category"], row["speedup"] = category, row["decode_tok_s"] / per_k[0]["decode_tok_s"]
            categories.append(row)
        if AUTO in per_k:
            auto_categories[category] = _auto_vs_fixed(
                per_k, {k: [s for s in ss if s.category == category] for k, ss in samples.items()})
    fixed = [r for k, r in rows.items() if k != AUTO]
    best = max(fixed, key=lambda r: r["decode_tok_s"])
    best_pred = max((r for r in fixed if "predicted_speedup" in r), key=lambda r: r["predicted_speedup"])
    out = {"results": list(rows.values()), "categories": categories, "best_k": best["draft_len"],
           "best_k_predicted": best_pred["draft_len"], "acceptance_curve": CURVE}
    if AUTO in rows:
        out["auto"] = {**_auto_vs_fixed(rows, samples), "categories": auto_categories}
    return out


def run_bench(cfg: BenchConfig) -> dict:
    fixed = [k for k in cfg.draft_lens if k != AUTO]
    if (not all(isinstance(k, int) and k >= 0 for k in fixed) or cfg.max_new_tokens < 2 or cfg.repetitions < 1
            or cfg.warmup < 0):
        raise EdgeMTPError("--draft-len must be auto or >= 0, --max-new-tokens >= 2, --repetitions >= 1, --warmup >= 0")
    auto = (AUTO,) if AUTO in cfg.draft_lens else ()
    cfg = BenchConfig(**{**cfg.__dict__, "draft_lens": (*sorted({0, *fixed}), *auto)})
    info = machine(cfg.bandwidth_mib)
    export = _Export(cfg)
    manifest = export.manifest
    prompts = load_prompts(cfg.prompts, int(manifest["vocab_size"]), int(manifest["context"]),
                           _codec(export, str(cfg.bundle)))
    nbytes = step_bytes(cfg.bundle, manifest, export.backend)
    samples = sweep(export, prompts, cfg)
    info["load_avg_end"] = list(os.getloadavg())
    return {
        "format": FORMAT, "bundle": str(cfg.bundle), "backend": export.backend, "model_id": export.model_id,
        "quantization": manifest["options"]["quant"], "export_draft_len": int(manifest["draft_len"]),
        "context": int(manifest["context"]),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in cfg.__dict__.items()},
        "machine": info, "bytes_per_target_step": nbytes,
        "prompts": {c: [len(p) for p in ps] for c, ps in prompts.items()},
        "formula": "E = 1 + sum_k prod_{j<=k} a_j; predicted speedup = E * t_decode / (K * t_draft + t_verify(K+1)) "
                   "(Leviathan et al. 2023)",
        **analyze(samples, export, cfg, info, nbytes),
    }
