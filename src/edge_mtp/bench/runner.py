"""`run_bench`: open the export, measure the machine, sweep K over the prompts, and assemble the result."""

from __future__ import annotations

import datetime
import os
import platform
from dataclasses import dataclass
from pathlib import Path

from edge_mtp.bench import predict
from edge_mtp.bench.bandwidth import copy_bandwidth
from edge_mtp.bench.measure import Sample, TimedBackend, measure_native, measure_python
from edge_mtp.bench.prompts import load_prompts
from edge_mtp.bench.stats import summarize
from edge_mtp.errors import EdgeMTPError

FORMAT = "edge-mtp-bench-sweep/1"
RUN_FORMAT = "edge-mtp-bench/1"  # each K's run, as the demo apps write it (profiling/README.md)
CURVE = [i / 20 for i in range(21)]  # constant per-slot acceptance rates for the predicted-speedup curve


@dataclass(frozen=True)
class BenchConfig:
    bundle: Path
    backend: str | None = None  # litert | onnx | native; None = by the export's kind
    prompts: str = "builtin"
    draft_lens: tuple[int, ...] = (0, 1, 2, 3, 4)
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
        self.path = cfg.bundle

    def measure(self, prompt: list[int], k: int, new: int, category: str) -> Sample:
        if self.runner is None:
            return measure_native(self.path, prompt, k, new, category)
        return measure_python(self.runner, prompt, k, new, category)

    def target_calls(self, k: int) -> int:
        """Target graph calls per verify of K+1 tokens: LiteRT runs one `decode` per token unless K+1
        is the bundle's verify length; ONNX has a dynamic token axis."""
        if self.backend == "onnx" or k == 0 or k == int(self.manifest["draft_len"]):
            return 1
        return k + 1


def step_bytes(path: Path, manifest: dict, backend: str) -> dict:
    """Bytes a target decode step reads: the target's weights (the tied LM head reads the whole
    embedding) + the whole K/V cache (the graphs attend over every slot). Same as `edge-mtp inspect`."""
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
    that load changes on a shared machine hit every K alike."""
    first = next(iter(prompts.values()))[0]
    for k in cfg.draft_lens:
        for _ in range(cfg.warmup):
            export.measure(first, k, cfg.max_new_tokens, "warmup")
    samples: dict[int, list[Sample]] = {k: [] for k in cfg.draft_lens}
    for category, items in prompts.items():
        for prompt in items:
            for _ in range(cfg.repetitions):
                for k in cfg.draft_lens:
                    samples[k].append(export.measure(prompt, k, cfg.max_new_tokens, category))
    return samples


def _predictions(row: dict, base: dict, target_calls: int, bytes_total: int, bandwidth: float) -> None:
    """Speedup (measured and predicted), break-even acceptance and achieved bandwidth, into `row`."""
    k, t_decode = row["draft_len"], base["t_verify_s"]
    row["speedup"] = row["decode_tok_s"] / base["decode_tok_s"]
    row["target_calls_per_verify"] = target_calls
    if row["t_verify_s"]:
        row["target_gb_s"] = target_calls * bytes_total / row["t_verify_s"] / 1e9
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
    return {"format": RUN_FORMAT, "platform": f"host-{export.backend}", "device": device,
            "bundle": Path(cfg.bundle).name, "mtp": row["draft_len"] > 0, "draft_len": row["draft_len"],
            "max_new_tokens": cfg.max_new_tokens, "repetitions": cfg.repetitions, "warmup": cfg.warmup,
            "tokens_generated": row["tokens_generated"], "wall_time_s": row["wall_time_s"]}


def analyze(samples: dict[int, list[Sample]], export: _Export, cfg: BenchConfig, info: dict, nbytes: dict) -> dict:
    rows = {k: summarize(s, k) for k, s in samples.items()}
    for k, row in rows.items():
        _predictions(row, rows[0], export.target_calls(k), nbytes["total"], info["memory_bandwidth_gb_s"])
        row["run"] = _run_record(row, cfg, export, info["cpu"])
    categories = []
    for category in dict.fromkeys(s.category for s in samples[0]):
        per_k = {k: summarize([s for s in ss if s.category == category], k) for k, ss in samples.items()}
        for k, row in per_k.items():
            row["category"], row["speedup"] = category, row["decode_tok_s"] / per_k[0]["decode_tok_s"]
            categories.append(row)
    best = max(rows.values(), key=lambda r: r["decode_tok_s"])
    best_pred = max((r for r in rows.values() if "predicted_speedup" in r), key=lambda r: r["predicted_speedup"])
    return {"results": list(rows.values()), "categories": categories, "best_k": best["draft_len"],
            "best_k_predicted": best_pred["draft_len"], "acceptance_curve": CURVE}


def run_bench(cfg: BenchConfig) -> dict:
    if any(k < 0 for k in cfg.draft_lens) or cfg.max_new_tokens < 2 or cfg.repetitions < 1 or cfg.warmup < 0:
        raise EdgeMTPError("--draft-len must be >= 0, --max-new-tokens >= 2, --repetitions >= 1, --warmup >= 0")
    cfg = BenchConfig(**{**cfg.__dict__, "draft_lens": tuple(sorted({0, *cfg.draft_lens}))})
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
