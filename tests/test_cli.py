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
    greedy tokens are K=0's; bad costs are one-line errors (exit 2)."""
    prompt = ",".join(map(str, pairs.prompts("tiny-e2b")[0]))
    pair = ["--target", e2b[0], "--drafter", e2b[1], "--prompt-ids", prompt, "--max-new-tokens", 16]
    runs = []
    given = ["--draft-costs", "0.2,0.1,1,1.1,1.2,1.3,1.4"]
    for i, costs in enumerate((given, given, [])):
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
    rc, _, err = _run(capsys, *pair, "--draft-len", 2, "--draft-costs", "1,1,2,3,4")
    assert rc == 2 and err == "error: --draft-costs applies to --draft-len auto only\n", err
    for bad in ("1,2", "1,1,0,2", "a,b,c"):
        assert main(["run", *map(str, pair), "--draft-len", "auto", "--draft-costs", bad]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "'--draft-costs': expected F,D,V1" in err, err


# ---- the click CLI: help, usage errors, flags a backend cannot honour, output folders ------------------
def _commands(command, path=()):
    """(path, command) of every command under the group, the groups themselves included."""
    import click

    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _commands(sub, (*path, name))


def _all_commands():
    from edge_mtp.cli import cli, edge_export

    every = [("edge-mtp", p, c) for p, c in _commands(cli)] + [("edge-export", (), edge_export)]
    return [pytest.param(prog, path, c, id=" ".join((prog, *path))) for prog, path, c in every]


@pytest.mark.parametrize("prog, path, command", _all_commands())
def test_help_documents_every_flag_and_shows_its_default(prog, path, command, capsys):
    import click

    from edge_mtp.cli import export_main

    rc = (export_main if prog == "edge-export" else main)([*path, "--help"])
    out = capsys.readouterr().out
    assert rc == 0 and out.startswith(f"Usage: {' '.join((prog, *path))} ")
    ctx = click.Context(command, info_name=prog, **command.context_settings)
    with_default = 0
    for param in command.params:
        if not isinstance(param, click.Option):
            continue
        assert param.help, f"{param.opts} has no help"
        _, text = param.get_help_record(ctx)
        default = param.get_default(ctx, call=False)  # None, False or click's "unset" when there is none
        has_value = isinstance(default, (int, float, str, tuple)) and default is not False
        if has_value or isinstance(param.show_default, str):
            with_default += 1
            assert "[default: " in text, (param.opts, text)
    assert out.count("[default:") >= with_default  # (a line may break after the colon)


@pytest.mark.parametrize("args, message", [
    (["run", "--prmpt", "x"], "edge-mtp run: No such option '--prmpt'"),
    (["run", "x.litertlm", "--prompt-ids", "1", "--context", "0"], "'--context': 0 is not in the range x>=1"),
    (["run", "--target", "t", "--drafter", "d", "--prompt-ids", "1", "--prefill-chunk", "0"],
     "'--prefill-chunk': 0 is not in the range x>=1"),
    (["run", "x.litertlm", "--prompt-ids", "1", "--draft-len", "-1"],
     "expected a non-negative integer or auto, got '-1'"),
    (["run", "x.litertlm"], "give one of --prompt TEXT or --prompt-ids IDS"),
    (["run", "x.litertlm", "--prompt", "a", "--prompt-ids", "1"], "--prompt or --prompt-ids, not both"),
    (["bench", "x.litertlm", "--draft-len", "0,a"], "expected a non-negative integer or auto, got 'a'"),
    (["frobnicate"], "No such command 'frobnicate'"),
])
def test_usage_errors_are_one_line(capsys, args, message):
    rc = main(args)
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1 and message in err, err


@pytest.mark.parametrize("backend", ["python", "native"])
@pytest.mark.parametrize("flag", [["--context", "64"], ["--dtype", "float32"], ["--dtype", "auto"], ["--dense-head"],
                                  ["--prefill-chunk", "4"]])
def test_flags_a_bundle_cannot_honour_are_errors(bundles, capsys, monkeypatch, flag, backend):
    """Issue 11 item 5: these were silently ignored on a bundle. Given explicitly (even at its default
    value) they are a one-line error naming the flag, before the bundle is opened."""
    import edge_mtp.runtime.open

    monkeypatch.setattr(edge_mtp.runtime.open, "open_export", lambda *a, **k: pytest.fail("opened the bundle"))
    rc = main(["run", str(bundles.path("tiny-e2b")), "--prompt-ids", "2,3", "--backend", backend, *flag])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert err.startswith(f"error: {flag[0]} applies to --target/--drafter (PyTorch) only: on a BUNDLE "), err


def test_pytorch_only_flags_reach_the_pytorch_backend(e2b, pairs, capsys, monkeypatch):
    """The same flags with --target/--drafter are handed to the PyTorch backend, and the run equals the
    library's run with those settings."""
    import edge_mtp.runtime.torch_backend as torch_backend

    calls = []

    def spy(*args):
        calls.append(args)
        return open_torch_backend(*args)

    monkeypatch.setattr(torch_backend, "open_torch_backend", spy)
    prompt = pairs.prompts("tiny-e2b")[0]
    rc, out, _ = _run(capsys, "--target", e2b[0], "--drafter", e2b[1], "--prompt-ids", ",".join(map(str, prompt)),
                      "--draft-len", 2, "--max-new-tokens", 10, "--context", 60, "--prefill-chunk", 3,
                      "--dense-head", "--dtype", "float32", "--json")
    assert rc == 0 and calls == [(e2b[0], e2b[1], 60, "float32", True, 3)]
    expected = generate(open_torch_backend(*calls[0])[0], prompt, LoopConfig(draft_len=2, max_new_tokens=10))
    assert json.loads(out)["tokens"] == expected.tokens


@pytest.mark.parametrize("args, missing", [
    (["run", "--target", "/no/target", "--drafter", "/no/drafter", "--prompt-ids", "1",
      "--trace", "{tmp}/nodir/t.jsonl"], "nodir"),
    (["run", "/no/bundle.litertlm", "--prompt-ids", "1", "--trace", "{tmp}/nodir/t.jsonl"], "nodir"),
    (["export", "--target", "/no/t", "--drafter", "/no/d", "-o", "{tmp}/nodir/out.litertlm"], "nodir"),
    (["bench", "/no/bundle.litertlm", "--json", "{tmp}/nodir/b.json"], "nodir"),
    (["bench", "/no/bundle.litertlm", "--report", "{tmp}/nodir/report"], "nodir"),
    (["make-checkpoint", "--preset", "tiny-e2b", "{tmp}/nodir/pair"], "nodir"),
    (["profile", "summarize", "/no/results", "--json", "{tmp}/nodir/s.json"], "nodir"),
])
def test_missing_output_folder_is_refused_before_any_work(tmp_path, capsys, args, missing):
    """Issue 11 items 3 and 9: one rule for every output; the inputs here do not exist either, so the
    folder is checked first (`run --trace nodir/x` used to fail only after loading the model)."""
    rc = main([a.format(tmp=tmp_path) for a in args])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert err.startswith("error: ") and f"directory {tmp_path / missing} does not exist" in err, err
    assert list(tmp_path.iterdir()) == []


def test_libraries_refuse_missing_parents_too(tmp_path):
    from edge_mtp.bench.report import write_json, write_report
    from edge_mtp.checkpoints import make_checkpoint
    from edge_mtp.errors import EdgeMTPError

    for call in (lambda: make_checkpoint("tiny-e2b", tmp_path / "a" / "pair"),
                 lambda: write_json({}, tmp_path / "a" / "b.json"),
                 lambda: write_report({}, tmp_path / "a" / "report")):
        with pytest.raises(EdgeMTPError, match=f"directory {tmp_path / 'a'} does not exist"):
            call()
    assert list(tmp_path.iterdir()) == []


def test_demo_prints_text_rates_and_where_it_wrote(pairs, bundles, capsys, monkeypatch, tmp_path):
    """Issue 11 item 11: the demo printed token ids only. (The tiny pair stands in for the shipped one,
    whose bundle tests/test_demo_pair.py does not export.)"""
    from conftest import BUNDLE_K

    import edge_mtp.demo as demo
    from edge_mtp.runtime.tokenizer import TextCodec

    monkeypatch.setenv("EDGE_MTP_CACHE", str(tmp_path))
    assert demo.cache_root() == tmp_path
    pair = pairs.dirs("tiny-e2b")[0].parent
    codec = TextCodec(pair / "target")
    text = codec.decode(pairs.prompts("tiny-e2b")[0])
    monkeypatch.setattr(demo, "demo_pair", lambda: pair)
    monkeypatch.setattr(demo, "demo_bundle", lambda p, k: bundles.path("tiny-e2b"))
    monkeypatch.setattr(demo, "demo_prompt", lambda p: text)
    assert main(["demo", "--draft-len", str(BUNDLE_K), "--max-new-tokens", "10"]) == 0
    out = capsys.readouterr().out
    prompt = codec.encode(text)
    backend, _, _ = open_torch_backend(pair / "target", pair / "drafter", context=len(prompt) + 16)
    tokens = generate(backend, prompt, LoopConfig(draft_len=BUNDLE_K, max_new_tokens=10)).tokens
    assert f"generated   {codec.decode(tokens)!r}" in out
    assert f"demo pair   {pair}" in out and f"bundle      {bundles.path('tiny-e2b')}" in out
    rates = [line for line in out.splitlines() if " tokens/s | tokens " in line]
    assert [r.split(":")[0] for r in rates] == ["PyTorch K=0", f"PyTorch K={BUNDLE_K}", "LiteRT  K=0",
                                                f"LiteRT  K={BUNDLE_K}"]
    assert "speculative output identical to plain greedy: True; LiteRT bundle trace identical to PyTorch: True" in out
