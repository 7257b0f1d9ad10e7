"""`edge-mtp run` end to end: output, JSON, trace file, and one-line errors that write nothing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge_mtp.cli import main
from edge_mtp.runtime import LoopConfig, generate, read_trace
from edge_mtp.runtime.torch_backend import open_torch_backend


def _run(capsys, *args) -> tuple[int, str, str]:
    rc = main(["run", *map(str, args)])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def e2b(pairs):
    return pairs.dirs("tiny-e2b")


def test_run_json_equals_library_and_trace_follows_the_contract(e2b, pairs, capsys, tmp_path):
    prompt = pairs.prompts("tiny-e2b")[1]
    trace = tmp_path / "run.jsonl"
    rc, out, _ = _run(capsys, "--target", e2b[0], "--drafter", e2b[1], "--prompt-ids", ",".join(map(str, prompt)),
                      "--draft-len", 3, "--max-new-tokens", 20, "--trace", trace, "--json")
    assert rc == 0
    result = json.loads(out)
    backend, _, _ = open_torch_backend(*e2b, context=len(prompt) + 24)
    assert result["tokens"] == generate(backend, prompt, LoopConfig(draft_len=3, max_new_tokens=20)).tokens
    lines = read_trace(trace)
    header, rounds, summary = lines[0], lines[1:-1], lines[-1]
    assert header["implementation"] == "python-torch" and header["model"].startswith("sha256:")
    assert header["prompt_ids"] == prompt and header["draft_len"] == 3 and header["sampling"] == {"mode": "greedy"}
    assert rounds[0]["drafts"] == [] and rounds[0]["position"] == len(prompt) - 1
    assert [t for r in rounds for t in r["emitted"]] == summary["tokens"] == result["tokens"]
    for r in rounds[1:]:
        assert r["emitted"] == r["drafts"][: r["accepted"]] + [r["target"][r["accepted"]]]
        assert r["top_logits"][0][0] == r["emitted"][-1]  # greedy: the bonus is the target's top-1
    drafting = [r for r in rounds if r["drafts"]]
    assert summary["accepted_per_position"][0] == sum(r["accepted"] > 0 for r in drafting) / len(drafting)
    assert summary["accepted"] == sum(r["accepted"] for r in rounds)
    assert summary["stop"] == "max_new_tokens" and summary["rounds"] == len(rounds)


def test_run_with_text_prompt_prints_text_and_summary(e2b, capsys):
    rc, out, _ = _run(capsys, "--target", e2b[0], "--drafter", e2b[1], "--prompt", "Hello world",
                      "--max-new-tokens", 8)
    assert rc == 0
    text, summary = out.rstrip("\n").rsplit("\n", 1)
    assert summary.startswith("tokens 8 | rounds ") and "acceptance per draft slot [" in summary


def _corrupt(pairs, tmp_path, what: str) -> tuple[Path, Path]:
    target, drafter = (shutil.copytree(d, tmp_path / d.name) for d in pairs.dirs("tiny-e2b"))
    weights = target / "model.safetensors"
    if what == "missing tensor":
        from safetensors.torch import load_file, save_file

        tensors = load_file(weights)
        tensors.pop("model.language_model.norm.weight")
        save_file(tensors, weights)
    elif what == "truncated":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif what == "not gemma":
        (target / "config.json").write_text(json.dumps({"model_type": "llama"}))
    elif what == "other drafter":
        drafter = pairs.dirs("tiny-e4b")[1]
    return target, drafter


@pytest.mark.parametrize("what, message", [
    ("missing tensor", "missing tensor model.language_model.norm.weight"),
    ("truncated", "truncated safetensors file"),
    ("not gemma", "is not a Gemma 4 target"),
    ("other drafter", "drafter backbone_hidden_size=160 but target hidden_size=128"),
    ("empty prompt", "the prompt is empty"),
    ("empty ids", "the prompt is empty"),
    ("id out of vocab", "outside the vocabulary of 4096"),
])
def test_bad_input_one_line_error_nothing_written(pairs, tmp_path, capsys, what, message):
    target, drafter = _corrupt(pairs, tmp_path, what)
    prompt = {"empty prompt": ["--prompt", ""], "empty ids": ["--prompt-ids", ""],
              "id out of vocab": ["--prompt-ids", "5,99999"]}.get(what, ["--prompt-ids", "5,6,7"])
    trace = tmp_path / "out" / "t.jsonl"
    trace.parent.mkdir()
    rc, out, err = _run(capsys, "--target", target, "--drafter", drafter, *prompt, "--trace", trace)
    assert rc == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err
    assert list(trace.parent.iterdir()) == []


def test_console_script_reports_errors_without_traceback(e2b):
    script = Path(sys.executable).parent / "edge-mtp"
    proc = subprocess.run([str(script), "run", "--target", str(e2b[0]), "--drafter", str(e2b[1]),
                           "--prompt-ids", "1,2", "--top-p", "0"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: --temperature must be >= 0 and --top-p in (0, 1]"
    assert "Traceback" not in proc.stderr


def test_runtime_never_imports_transformers(e2b):
    """transformers is a dev extra: loading, running and tracing must work without it."""
    code = (
        "import sys; from edge_mtp.cli import main; "
        f"rc = main(['run', '--target', {str(e2b[0])!r}, '--drafter', {str(e2b[1])!r}, '--prompt', 'hi', "
        "'--max-new-tokens', '3']); "
        "assert rc == 0 and 'transformers' not in sys.modules, sorted(m for m in sys.modules if 'transformers' in m)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_run_draft_len_auto(e2b, pairs, capsys, tmp_path):
    """`--draft-len auto`: given costs go into the header and replay exactly; without them they are timed;
    greedy tokens are K=0's; bad costs are one-line errors (argparse's exit 2)."""
    prompt = ",".join(map(str, pairs.prompts("tiny-e2b")[0]))
    pair = ["--target", e2b[0], "--drafter", e2b[1], "--prompt-ids", prompt, "--max-new-tokens", 16]
    runs = []
    for i, costs in enumerate((["--draft-costs", "0.2,0.1,1,1.1,1.2,1.3,1.4"], ["--draft-costs", "0.2,0.1,1,1.1,1.2,1.3,1.4"],
                               [])):
        trace = tmp_path / f"auto{i}.jsonl"
        rc, out, _ = _run(capsys, *pair, "--draft-len", "auto", *costs, "--trace", trace, "--json")
        assert rc == 0
        runs.append((json.loads(out), read_trace(trace)))
    (first, a), (_, b), (_, timed) = runs
    assert a[0]["draft_len"] == "auto" and a[0]["draft_costs_from"] == "given"
    assert a[0]["draft_policy"]["verify_ms"] == [1.0, 1.1, 1.2, 1.3, 1.4] and a[0]["draft_policy"]["draft_ms"] == 0.1
    assert a[0]["draft_policy"]["first_draft_ms"] == 0.2
    assert [r["drafts"] for r in a[1:-1]] == [r["drafts"] for r in b[1:-1]] and any(r["drafts"] for r in a[1:-1])
    assert timed[0]["draft_costs_from"] == "calibration" and len(timed[0]["draft_policy"]["verify_ms"]) == 5
    rc, out, _ = _run(capsys, *pair, "--draft-len", 0, "--json")
    assert json.loads(out)["tokens"] == first["tokens"] == timed[-1]["tokens"]
    assert _run(capsys, *pair, "--draft-len", 2, "--draft-costs", "1,1,2,3,4")[0] == 2
    for bad in ("1,2", "1,1,0,2", "a,b,c"):
        with pytest.raises(SystemExit) as e:
            main(["run", *map(str, pair), "--draft-len", "auto", "--draft-costs", bad])
        assert e.value.code == 2
    assert "--draft-costs: expected F,D,V1" in capsys.readouterr().err
