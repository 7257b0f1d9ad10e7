"""Real-size benchmark: build the E2B/E4B presets, export every format/recipe, check and time the bundles.

Runs by hand (about an hour per preset on a 2-core machine); results go to benchmarks/README.md and
`--json`. CI runs the same code paths on the tiny pair (tests/test_export_streaming.py).

    .venv/bin/python benchmarks/scale.py --cache ~/.cache/edge-mtp/scale --presets e2b,e4b \\
        --exports litertlm:int4,litertlm:mixed,onnx:int4 --determinism --check --verify --bench \\
        --json benchmarks/results/scale.json

For each preset (checkpoint made once and cached: `edge-mtp make-checkpoint --preset NAME`) and each
`format:quant`, one step per process, each under `/usr/bin/time -v` (peak RSS of the whole step):

* export: `edge-export ... --draft-len 3 --prefill 32,128 --context 2048` (the README's command), wall
  time, peak RSS, bytes per section. The graph cache starts empty, so the first recipe of each preset and
  format converts its graphs and later ones reuse them; with `--determinism` a second export, converting
  again, must be byte-identical;
* check (`.litertlm`): LiteRT-LM (`litert-lm-api`) loads the bundle, reports speculative-decoding
  support, and generates 16 greedy tokens with MTP on and off, with its default activation type and fp32;
  then our Python loop, the native C core and (ONNX) onnxruntime generate from it;
* bench: `edge-mtp bench --draft-len 0,3`: decode / verify / drafter-step ms, bytes per step, achieved
  GB/s against the measured bandwidth, and the speedup those costs predict at published acceptance
  rates (vLLM's E4B test: mean accepted length 2.28 on MT-Bench, 2.68 on HumanEval with 2 drafts;
  llama.cpp's E2B: 68% per draft with 3 drafts), Leviathan et al. 2023.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.executable).parent  # the venv's bin/ (edge-export, edge-mtp, python)
DRAFT_LEN, PREFILL, CONTEXT = 3, "32,128", 2048
PROMPT = [2, 818, 5279, 529, 7001, 563, 496, 2455, 1003, 236881]  # 10 ids, any vocabulary of 262144
# Published acceptance: (label, K, expected tokens per round E) -- E = 1 + sum_k prod_{j<=k} a_j.
PUBLISHED = [("vLLM E4B MT-Bench, E=2.28, K=2", 2, 2.28), ("vLLM E4B HumanEval, E=2.68, K=2", 2, 2.68),
             ("llama.cpp E2B, 68%/draft, K=3", 3, 1 + 0.68 + 0.68 ** 2 + 0.68 ** 3)]  # expected_tokens([.68] * 3)


def timed(cmd: list[str], log: Path, env: dict | None = None) -> dict:
    """Run `cmd` under /usr/bin/time -v; its output goes to `log`. Returns rc, wall seconds, peak RSS GB."""
    start = time.time()
    with open(log, "w") as f:
        proc = subprocess.run(["/usr/bin/time", "-v", *cmd], stdout=f, stderr=subprocess.STDOUT,
                              env={**os.environ, **(env or {})}, check=False)
    text = log.read_text(errors="replace")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    return {"rc": proc.returncode, "wall_s": round(time.time() - start, 1),
            "peak_rss_gb": round(int(rss.group(1)) / 1e6, 3) if rss else None, "log": str(log)}


def checkpoint(cache: Path, preset: str) -> Path:
    pair = cache / preset
    if not (pair / "drafter" / "config.json").exists():
        step = timed([str(VENV / "edge-mtp"), "make-checkpoint", "--preset", preset, str(pair)],
                     cache / f"make-{preset}.log")
        if step["rc"]:
            sys.exit(f"make-checkpoint {preset} failed; see {step['log']}")
    return pair


def export(cache: Path, pair: Path, preset: str, fmt: str, quant: str, tag: str = "", graph_cache: str = "") -> dict:
    out = cache / (f"{preset}-{quant}{tag}.litertlm" if fmt == "litertlm" else f"{preset}-{quant}{tag}-onnx")
    cmd = [str(VENV / "edge-export"), "--target", str(pair / "target"), "--drafter", str(pair / "drafter"),
           "-o", str(out), "--format", fmt, "--quant", quant, "--draft-len", str(DRAFT_LEN), "--context", str(CONTEXT)]
    if fmt == "litertlm":
        cmd += ["--prefill", PREFILL]
    step = timed(cmd, cache / f"export-{preset}-{fmt}-{quant}{tag}.log",
                 {"EDGE_MTP_GRAPH_CACHE": graph_cache or str(cache / "graphs")})
    if step["rc"] == 0:
        sys.path.insert(0, str(ROOT / "src"))
        from edge_mtp.runtime.open import read_manifest

        manifest = read_manifest(out)
        parts = manifest.get("sections") or manifest["graphs"]
        step["bytes"] = {k: v["bytes"] for k, v in parts.items()}
        step["total_bytes"] = sum(step["bytes"].values())
        step["path"] = str(out)
    return step


def _sha(path: Path) -> str:
    sys.path.insert(0, str(ROOT / "src"))
    from edge_mtp.contract import file_sha256

    if path.is_dir():
        return json.dumps({p.name: file_sha256(p) for p in sorted(path.iterdir())})
    return file_sha256(path)


LITERT_LM = r'''
import os, sys, tempfile
import litert_lm
bundle, act, mtp = sys.argv[1], sys.argv[2], sys.argv[3] == "on"
with tempfile.TemporaryDirectory(dir=os.path.dirname(bundle)) as tmp:  # the engine's cache, beside the bundle
    os.environ["HOME"] = tmp
    with litert_lm.ModelInfo(bundle) as info:
        support = bool(info.llm.has_speculative_decoding_support())
    kw = {} if act == "default" else {"activation_data_type": litert_lm.ActivationDataType.FLOAT32}
    engine = litert_lm.Engine(bundle, backend=litert_lm.Backend.CPU(thread_count=2), max_num_tokens=32,
                              enable_speculative_decoding=mtp, cache_dir=tmp, **kw)
    session = engine.create_session(apply_prompt_template=False)
    session.run_prefill(["The quick brown fox"])
    text = session.run_decode().texts[0]
    del session, engine
print("RESULT " + repr((support, text)))
'''

OURS = r'''
import gc, json, sys
from edge_mtp.runtime import LoopConfig, generate
from edge_mtp.runtime.open import open_export
bundle, native, prompt = sys.argv[1], sys.argv[2] == "1", json.loads(sys.argv[3])
backend = open_export(bundle)
plain = generate(backend, prompt, LoopConfig(draft_len=0, max_new_tokens=16)).tokens
spec = generate(backend, prompt, LoopConfig(draft_len=3, max_new_tokens=16)).tokens
out = {"plain": plain, "mtp": spec,
       "first_difference": next((i for i, (a, b) in enumerate(zip(plain, spec)) if a != b), None)}
del backend  # a full-size engine holds its packed weights: free them before the native core loads its own
gc.collect()
if native:
    from edge_mtp.runtime.native import native_args, run_native
    for k in (0, 3):
        proc = run_native(bundle, native_args(prompt, 16, k, as_json=True), capture=True)
        out[f"native_k{k}"] = json.loads(proc.stdout.strip().splitlines()[-1])["tokens"] if proc.returncode == 0 \
            else f"exit {proc.returncode}"
print("RESULT " + json.dumps(out))
'''


def _result(log: Path):
    found = re.findall(r"^RESULT (.*)$", log.read_text(errors="replace"), re.M)
    return found[-1] if found else None


def _first_tokens_equal(pair: Path, a: str | None, b: str | None, n: int) -> bool | None:
    """LiteRT-LM returns text (up to its token budget): the first `n` tokens, re-encoded, compared."""
    if a is None or b is None:
        return None
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(pair / "target" / "tokenizer.json"))
    ids = [tok.encode(t, add_special_tokens=False).ids[:n] for t in (a, b)]
    return ids[0] == ids[1] and len(ids[0]) == n


def check(cache: Path, bundle: Path, kind: str, native: bool, pair: Path) -> dict:
    """Each engine in its own process (a full-size engine holds the whole bundle and its packed weights)."""
    import ast

    step = {"steps": {}}
    if kind == "litertlm":
        texts = {}
        for act in ("default", "fp32"):
            for mtp in ("off", "on"):
                log = cache / f"check-{bundle.name}-litert-lm-{act}-{mtp}.log"
                run = timed([str(VENV / "python"), "-c", LITERT_LM, str(bundle), act, mtp], log)
                found = _result(log)
                support, texts[(act, mtp)] = ast.literal_eval(found) if found else (None, None)
                step["speculative_support"] = support
                step["steps"][f"litert-lm {act} mtp {mtp}"] = run
            step[f"litert_lm_{act}_mtp_on_equals_off"] = texts[(act, "on")] == texts[(act, "off")] is not None
            step[f"litert_lm_{act}_first_16_tokens_equal"] = _first_tokens_equal(pair, texts[(act, "off")],
                                                                                  texts[(act, "on")], 16)
            step[f"litert_lm_{act}_texts"] = [texts[(act, "off")], texts[(act, "on")]]
    log = cache / f"check-{bundle.name}-ours.log"
    step["steps"]["python loop + native"] = timed([str(VENV / "python"), "-c", OURS, str(bundle),
                                                  "1" if native else "0", json.dumps(PROMPT)], log)
    found = _result(log)
    step.update(json.loads(found) if found else {"ours": "failed"})
    return step


def verify(cache: Path, bundle: Path, pair: Path) -> dict:
    """`edge-mtp verify` against the PyTorch model in the checkpoint's dtype (bf16): the report's lines."""
    log = cache / f"verify-{bundle.name}.log"
    step = timed([str(VENV / "edge-mtp"), "verify", str(bundle), "--target", str(pair / "target"),
                  "--drafter", str(pair / "drafter")], log)
    step["report"] = [line for line in log.read_text(errors="replace").splitlines() if "│" in line]
    return step


def bench(cache: Path, bundle: Path, backend: str) -> dict:
    prompts = cache / "bench-prompts.json"
    prompts.write_text(json.dumps({"random": [PROMPT]}))
    out = cache / f"bench-{bundle.name}-{backend}.json"
    cmd = [str(VENV / "edge-mtp"), "bench", str(bundle), "--backend", backend, "--draft-len", f"0,{DRAFT_LEN}",
           "--max-new-tokens", "16", "--prompts", str(prompts), "--json", str(out)]
    step = timed(cmd, cache / f"bench-{bundle.name}-{backend}.log")
    if step["rc"]:
        return step
    result = json.loads(out.read_text())
    base, spec = (next(r for r in result["results"] if r["draft_len"] == k) for k in (0, DRAFT_LEN))
    t_decode, t_verify, t_draft = base["t_verify_s"], spec["t_verify_s"], spec["t_draft_s"]
    step.update({
        "decode_ms": round(t_decode * 1e3, 2), "verify_ms": round(t_verify * 1e3, 2),
        "drafter_step_ms": round(t_draft * 1e3, 2),
        "verify_over_decode": round(t_verify / t_decode, 3), "drafter_over_decode": round(t_draft / t_decode, 3),
        "bytes_per_step": result["bytes_per_target_step"]["total"],
        "decode_gb_s": round(base["target_gb_s"], 2),
        "bandwidth_gb_s": round(result["machine"]["memory_bandwidth_gb_s"], 2),
        "bandwidth_fraction": round(base["bandwidth_fraction"], 3),
        "load_avg": [result["machine"]["load_avg_start"], result["machine"]["load_avg_end"]],
        # a K=2 round on a K=3 bundle verifies with padding rows, i.e. at the K=3 cost (conservative)
        "predicted_speedup": {label: round(e * t_decode / (k * t_draft + t_verify), 3) for label, k, e in PUBLISHED},
    })
    return step


def _gb(n: float | None) -> str:
    return "" if n is None else f"{n / 1e9:.3f}"


def _mmss(seconds: float) -> str:
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


def markdown(results: list[dict]) -> str:
    """The tables benchmarks/README.md shows, from the `--json` rows of one or more runs."""
    lines = ["| preset | export | rc | wall | peak RSS GB | total GB | " + " | ".join(
        ["embedder", "per-layer embedder", "prefill/decode/verify", "drafter"]) + " | byte-identical |",
        "|" + "---|" * 11]
    names = ["tf_lite_embedder", "tf_lite_per_layer_embedder", "tf_lite_prefill_decode", "tf_lite_mtp_drafter"]
    for r in results:
        e = r["export"]
        sizes = [_gb(e.get("bytes", {}).get(n)) for n in names] if r["format"] == "litertlm" else \
            [" + ".join(f"{k} {_gb(v)}" for k, v in e.get("bytes", {}).items())] + [""] * 3
        wall = _mmss(e["wall_s"])
        lines.append(f"| {r['preset']} | {r['format']} {r['quant']} | {e['rc']} | {wall} | {e['peak_rss_gb']} | "
                     f"{_gb(e.get('total_bytes'))} | " + " | ".join(sizes) + f" | {r.get('byte_identical', '')} |")
    lines += ["", "| preset | export | LiteRT-LM spec. support | LiteRT-LM MTP on == off: whole text, first 16 tokens "
              "(default / fp32) | "
              "ours: MTP == plain (first difference) | native == Python (K=0 / K=3) | check peak RSS GB |",
              "|" + "---|" * 7]
    for r in results:
        c = r.get("check")
        if not c:
            continue
        native = "" if "native_k0" not in c else f"{c['native_k0'] == c['plain']} / {c['native_k3'] == c['mtp']}"
        rss = max((s["peak_rss_gb"] or 0) for s in c["steps"].values())
        ours = f"{c['plain'] == c['mtp']} ({c['first_difference']})" if "plain" in c else "failed"
        same = " / ".join(f"{c.get(f'litert_lm_{act}_mtp_on_equals_off', '')}, "
                          f"{c.get(f'litert_lm_{act}_first_16_tokens_equal', '')}" for act in ("default", "fp32"))
        lines.append(f"| {r['preset']} | {r['format']} {r['quant']} | {c.get('speculative_support', '')} | {same}"
                     f" | {ours} | {native} | {rss} |")
    lines += ["", "| preset | export | decode ms | verify(K+1=4) ms | drafter step ms | verify/decode | "
              "drafter/decode | MB per decode step | decode GB/s | copy GB/s | share | predicted speedup "
              "(" + "; ".join(label for label, _, _ in PUBLISHED) + ") | load (1 min) |", "|" + "---|" * 13]
    for r in results:
        b = r.get("bench")
        if not b or b.get("rc"):
            continue
        lines.append(f"| {r['preset']} | {r['format']} {r['quant']} | {b['decode_ms']} | {b['verify_ms']} | "
                     f"{b['drafter_step_ms']} | {b['verify_over_decode']} | {b['drafter_over_decode']} | "
                     f"{b['bytes_per_step'] / 1e6:.0f} | {b['decode_gb_s']} | {b['bandwidth_gb_s']} | "
                     f"{b['bandwidth_fraction']} | {' / '.join(str(v) for v in b['predicted_speedup'].values())} | "
                     f"{b['load_avg'][0][0]:.1f} → {b['load_avg'][1][0]:.1f} |")
    lines += ["", "| preset | export | verify rc | wall | peak RSS GB |", "|" + "---|" * 5]
    for r in results:
        v = r.get("verify")
        if v:
            lines.append(f"| {r['preset']} | {r['format']} {r['quant']} | {v['rc']} | "
                         f"{_mmss(v['wall_s'])} | {v['peak_rss_gb']} |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "edge-mtp" / "scale")
    p.add_argument("--presets", default="e2b,e4b")
    p.add_argument("--exports", default="litertlm:int4,onnx:int4", help="comma-separated format:quant")
    p.add_argument("--determinism", action="store_true", help="export each twice and compare the bytes")
    p.add_argument("--check", action="store_true", help="LiteRT-LM, Python loop, native core, onnxruntime")
    p.add_argument("--verify", action="store_true",
                   help="edge-mtp verify on each quantized LiteRT export (bf16 reference)")
    p.add_argument("--bench", action="store_true", help="edge-mtp bench on each export")
    p.add_argument("--json", type=Path, help="write all results here")
    p.add_argument("--keep-graphs", action="store_true",
                   help="keep the graph cache of an earlier run (by default the first export of each preset converts)")
    p.add_argument("--markdown", type=Path, nargs="+", metavar="JSON", help="only print the tables of earlier runs")
    args = p.parse_args()
    if args.markdown:
        print(markdown([row for path in args.markdown for row in json.loads(path.read_text())]))
        return 0
    args.cache.mkdir(parents=True, exist_ok=True)
    if not args.keep_graphs:
        subprocess.run(["rm", "-rf", str(args.cache / "graphs")], check=True)  # the first export of each converts
    results = []
    for preset in args.presets.split(","):
        pair = checkpoint(args.cache, preset)
        for spec in args.exports.split(","):
            fmt, quant = spec.split(":")
            row = {"preset": preset, "format": fmt, "quant": quant,
                   "export": export(args.cache, pair, preset, fmt, quant)}
            print(json.dumps(row), flush=True)
            path = Path(row["export"].get("path", ""))
            if row["export"]["rc"] == 0 and args.determinism:
                again = export(args.cache, pair, preset, fmt, quant, tag="-again", graph_cache="off")  # convert too
                row["byte_identical"] = again["rc"] == 0 and _sha(path) == _sha(Path(again["path"]))
                subprocess.run(["rm", "-rf", again.get("path", "/nonexistent")], check=False)
            if row["export"]["rc"] == 0 and args.check:
                row["check"] = check(args.cache, path, fmt, native=fmt == "litertlm", pair=pair)
            if row["export"]["rc"] == 0 and args.verify and fmt == "litertlm":
                row["verify"] = verify(args.cache, path, pair)
            if row["export"]["rc"] == 0 and args.bench:
                row["bench"] = bench(args.cache, path, "litert" if fmt == "litertlm" else "onnx")
            results.append(row)
            print(json.dumps(row), flush=True)
            if args.json:
                args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
