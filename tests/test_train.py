"""`edge-mtp train-drafter` and its parts, on the tiny stand-in pairs: the objective feeds the drafter what the
loop feeds it, training lowers the loss, resuming equals not stopping, the output is what transformers
saves, bad input writes nothing."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from edge_mtp.cli import main
from edge_mtp.model import load_drafter, load_target, load_target_config
from edge_mtp.runtime.torch_backend import TorchBackend
from edge_mtp.runtime.views import drafter_views
from edge_mtp.train import drafter_io
from edge_mtp.train.centroids import balanced_kmeans
from edge_mtp.train.data import batch_indices, make_windows
from edge_mtp.train.drafter import Options, checkpoint_dir, fit, train_drafter
from edge_mtp.train.selfdistill import chain_loss, draft_hidden, round_starts, teacher_pass, view_masks
from edge_mtp.train.tokenizer import train_tokenizer

K = 3


@pytest.fixture(scope="module")
def text(tmp_path_factory) -> Path:
    """Real text: a standard-library module's source."""
    import json.decoder

    path = tmp_path_factory.mktemp("data") / "decoder.py"
    path.write_text(Path(json.decoder.__file__).read_text())
    return path


def _options(pairs, text, out: Path, **kw) -> Options:
    base = dict(target=pairs.dirs("tiny-e2b")[0], data=(text,), out=out, steps=4, batch=2, seq_len=48, lr=3e-3,
                warmup=1, checkpoint_every=2, eval_count=2, eval_new_tokens=8, eval_ks=(1, 2), threads=1)
    return Options(**{**base, **kw})


def test_chained_steps_are_the_loops_draft_calls(pairs):
    """Round start q of a teacher-forced window, step j: the same logits and carry as the backend's `draft`
    after a prefill of x_0..x_{q-1}, with the clean view, carry h_{q-1} and the chained carries."""
    target, tcfg = load_target(pairs.dirs("tiny-e2b")[0], "float32")
    drafter, _ = load_drafter(pairs.dirs("tiny-e2b")[1], "float32")
    tokens = torch.tensor([pairs.prompts("tiny-e2b")[0] + pairs.prompts("tiny-e2b")[1]])[:, :30]
    length = tokens.shape[1]
    teacher = teacher_pass(target, tokens)
    starts = round_starts(length, K)
    masks = view_masks(starts, length, tcfg.text.sliding_window, torch.float32)
    carry, chained = teacher.hidden[:, starts - 1], []
    with torch.no_grad():
        for j in range(K):
            act = torch.cat([target.embed(tokens[:, starts + j]), carry], dim=-1)
            hn = draft_hidden(drafter, act, starts, teacher.kv, masks)
            carry = drafter.post_projection(hn)
            chained.append((drafter.logits(hn.reshape(-1, 1, hn.shape[-1])), carry))
    window = tcfg.text.sliding_window
    for i, q in enumerate(starts.tolist()):
        if q not in (1, 5, window + 3, length - K):
            continue
        backend = TorchBackend(target, tcfg, drafter, context=length)
        out = backend.prefill(tokens[0, :q].tolist())
        assert torch.allclose(torch.from_numpy(out.hidden[-1]), teacher.hidden[0, q - 1], rtol=1e-4, atol=1e-4)
        views = drafter_views(0, q - 1, q + 1, window, "clean")
        state = out.hidden[-1]
        for j in range(K):
            logits, state = backend.draft(int(tokens[0, q + j]), state, q, views)
            ours_logits, ours_carry = chained[j]
            assert torch.allclose(torch.from_numpy(logits), ours_logits[i, 0], rtol=1e-4, atol=1e-4), (q, j)
            assert torch.allclose(torch.from_numpy(state), ours_carry[0, i], rtol=1e-4, atol=1e-4), (q, j)


def test_loss_falls_on_a_fixed_batch(pairs):
    target, _ = load_target(pairs.dirs("tiny-e2b")[0], "float32")
    drafter, _ = load_drafter(pairs.dirs("tiny-e2b")[1], "float32")
    windows = torch.tensor([p + p[:4] for p in pairs.prompts("tiny-e2b")[:4]])  # [4, 16]: one batch
    with torch.no_grad():
        before = float(chain_loss(target, drafter, windows, K)[0])
    o = Options(target=Path(), data=(), out=Path(), steps=8, batch=4, lr=1e-2, warmup=0, draft_len=K)
    run = fit(target, drafter, windows, o)
    with torch.no_grad():
        after = float(chain_loss(target, drafter, windows, K)[0])
    assert after < 0.9 * before, (before, after)
    assert len(run.history) == 1 and run.step == 8


class _CtrlC:
    """A progress display whose update raises KeyboardInterrupt once training reaches step `at`."""

    def __init__(self, at: int):
        self.at = at

    def add_task(self, *args, **kwargs) -> int:
        return 0

    def update(self, task, completed=None, **kwargs) -> None:
        if completed == self.at:
            raise KeyboardInterrupt


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


@pytest.fixture(scope="module")
def trained(pairs, text, tmp_path_factory) -> Path:
    """A 4-step run from the tiny drafter: the folder train-drafter writes."""
    out = tmp_path_factory.mktemp("trained") / "drafter"
    train_drafter(_options(pairs, text, out, init=pairs.dirs("tiny-e2b")[1]))
    return out


def test_resume_gives_the_uninterrupted_weights(pairs, text, trained, tmp_path):
    o = _options(pairs, text, tmp_path / "drafter", init=pairs.dirs("tiny-e2b")[1])
    with pytest.raises(KeyboardInterrupt):
        train_drafter(o, progress=_CtrlC(at=3))
    assert not o.out.exists() and (checkpoint_dir(o.out) / "state.json").is_file()
    assert json.loads((checkpoint_dir(o.out) / "state.json").read_text())["step"] == 2
    train_drafter(replace(o, resume=True))
    assert not checkpoint_dir(o.out).exists()
    assert _files(o.out) == _files(trained)  # weights, configs and report, byte for byte


def test_output_is_what_transformers_saves(trained, tmp_path):
    from transformers import Gemma4AssistantForCausalLM

    model = Gemma4AssistantForCausalLM.from_pretrained(trained, dtype=torch.float32)
    ours, _ = load_drafter(trained)
    for key, value in ours.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    model.save_pretrained(tmp_path / "resaved")
    assert (tmp_path / "resaved" / "model.safetensors").read_bytes() == (trained / "model.safetensors").read_bytes()
    assert json.loads((trained / "generation_config.json").read_text())["num_assistant_tokens"] == 3
    report = json.loads((trained / "train_drafter.json").read_text())
    assert report["acceptance"]["identical_to_plain"] and [h["step"] for h in report["history"]] == [2, 4]


def test_output_exports_with_edge_export(pairs, trained, tmp_path):
    """The folder train-drafter writes is an exporter input: edge-export takes it, and the bundle's rounds
    equal PyTorch's on the same pair."""
    from edge_mtp.cli import export_main
    from edge_mtp.runtime import LoopConfig, generate
    from edge_mtp.runtime.open import open_export
    from edge_mtp.runtime.torch_backend import open_torch_backend

    target = pairs.dirs("tiny-e2b")[0]
    bundle = tmp_path / "trained.litertlm"
    assert export_main(["--target", target, "--drafter", trained, "-o", bundle, "--draft-len", "3",
                        "--prefill", "8", "--context", "64"]) == 0
    prompt, cfg = pairs.prompts("tiny-e2b")[0], LoopConfig(draft_len=3, max_new_tokens=16)
    ours = generate(open_export(bundle), prompt, cfg)
    ref = generate(open_torch_backend(target, trained, 64)[0], prompt, cfg)
    assert ours.tokens == ref.tokens
    assert [(r.drafts, r.accepted) for r in ours.rounds] == [(r.drafts, r.accepted) for r in ref.rounds]


def test_fresh_config_is_transformers_own(pairs, tmp_path):
    """A fresh drafter's config.json equals what transformers writes for the same assistant shape."""
    from edge_mtp.checkpoints.make import build_drafter
    from edge_mtp.checkpoints.presets import PRESETS

    build_drafter(PRESETS["tiny-e2b"], device="meta").config.save_pretrained(tmp_path)
    theirs = json.loads((tmp_path / "config.json").read_text())
    ours = drafter_io.fresh_drafter_config(load_target_config(pairs.dirs("tiny-e2b")[0]), hidden=64,
                                           intermediate=256, heads=4, centroids=64, top_k=8)
    theirs["architectures"] = ["Gemma4AssistantForCausalLM"]  # what the model's save_pretrained adds
    assert theirs.pop("transformers_version") and json.loads(json.dumps(ours)) == theirs


def test_fresh_drafter_trains_and_loads_in_transformers(pairs, text, tmp_path):
    from transformers import Gemma4AssistantForCausalLM

    out = tmp_path / "fresh"
    rc = main(["train-drafter", "--target", str(pairs.dirs("tiny-e2b")[0]), "--data", str(text), "-o", str(out),
               "--steps", "2", "--batch", "2", "--seq-len", "32", "--eval-ks", "1", "--eval-new-tokens", "4",
               "--threads", "1", "--hidden", "32", "--intermediate", "64", "--centroids", "32", "--top-k", "4"])
    assert rc == 0
    model = Gemma4AssistantForCausalLM.from_pretrained(out, dtype=torch.float32)
    assert model.config.text_config.hidden_size == 32 and model.config.num_centroids == 32
    ordering = model.state_dict()["masked_embedding.token_ordering"]
    assert torch.equal(ordering.sort().values, torch.arange(4096))


def test_balanced_kmeans_clusters_by_direction():
    g = torch.Generator().manual_seed(0)
    directions = torch.randn(8, 16, generator=g)
    table = directions.repeat_interleave(32, 0) + 0.05 * torch.randn(256, 16, generator=g)  # 8 tight groups
    ordering = balanced_kmeans(table, 8)
    assert torch.equal(ordering.sort().values, torch.arange(256))
    assert torch.equal(balanced_kmeans(table, 8), ordering)
    groups = (ordering // 32).view(8, 32)  # the true group of every token, per cluster
    assert all(len(set(row.tolist())) == 1 for row in groups)  # each cluster is exactly one group


def test_tokenizer_keeps_gemma_ids_and_is_deterministic(text):
    from edge_mtp.checkpoints.tokenizer import SPECIAL_TOKENS

    texts = [text.read_text(), "<start_of_turn>user\nhello<end_of_turn>\n" * 5]
    a, b = train_tokenizer(texts, 400), train_tokenizer(texts, 400)
    assert a.to_str() == b.to_str() and a.get_vocab_size() == 400
    assert [a.token_to_id(t) for t in SPECIAL_TOKENS] == list(range(107))
    ids = a.encode(texts[1]).ids
    assert ids[:2] == [2, 105] and 106 in ids
    assert a.decode(a.encode(texts[0]).ids) == texts[0]


def test_windows_and_batches():
    w = make_windows(list(range(10, 110)), seq_len=10, bos=2, holdout=4)
    assert (w.train[:, 0] == 2).all() and (w.heldout[:, 0] == 2).all()
    assert len(w.train) + len(w.heldout) == 100 // 9 and len(w.heldout) == 2
    assert w.heldout[0, 1:].tolist() == list(range(10 + 3 * 9, 10 + 4 * 9))  # the 4th window
    first = [batch_indices(9, 3, s, seed=1).tolist() for s in range(6)]
    assert first == [batch_indices(9, 3, s, seed=1).tolist() for s in range(6)]
    assert sorted(i for batch in first[:3] for i in batch) == list(range(9))  # one epoch sees every window once


def _fails(capsys, work: Path, *argv) -> str:
    """Run train-drafter into `work`/out; it must fail with one line and leave `work` empty."""
    rc = main(["train-drafter", *map(str, argv), "-o", str(work / "out"), "--steps", "1"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: ") and "\n" not in err, err
    assert os.listdir(work) == []
    return err


def test_bad_input_is_one_line_and_writes_nothing(pairs, text, capsys, tmp_path):
    e2b, e4b = pairs.dirs("tiny-e2b"), pairs.dirs("tiny-e4b")
    work, empty = tmp_path / "work", tmp_path / "empty"
    work.mkdir()
    empty.mkdir()
    assert "is not a Gemma 4 target" in _fails(capsys, work, "--target", e2b[1], "--data", text)
    assert "config.json: file not found" in _fails(capsys, work, "--target", empty, "--data", text)
    assert "does not fit target" in _fails(capsys, work, "--target", e2b[0], "--init", e4b[1], "--data", text)
    for name, data in (("empty.txt", b" \n"), ("blob.bin", b"\x00\x01\x02"), ("latin1.txt", b"caf\xe9 au lait")):
        bad = tmp_path / name
        bad.write_bytes(data)
        err = _fails(capsys, work, "--target", e2b[0], "--data", bad)
        assert str(bad) in err and "expected UTF-8 text" in err
    assert "--resume" in _fails(capsys, work, "--target", e2b[0], "--data", text, "--resume")


def test_fake_quantize_follows_the_litert_recipes(pairs):
    """int8: 256 levels per row everywhere; int4: 16 levels per row on matmuls and tables, but 256 on the
    per-layer-embedding projections (Google's gemma4_mixed48 layout); error within half a step."""
    from edge_mtp.train.fakequant import fake_quantize_

    target, _ = load_target(pairs.dirs("tiny-e2b")[0], "float32")
    before = {n: p.clone() for n, p in target.named_parameters() if p.dim() == 2}
    assert fake_quantize_(target, "int4") == len(before)
    after = dict(target.named_parameters())
    for name, w in before.items():
        q = after[name]
        levels = max(len(set(row.tolist())) for row in q)
        assert levels <= (256 if "per_layer_" in name and "embed" not in name else 16), (name, levels)
        step = w.abs().amax(1, keepdim=True) / (127 if levels > 16 else 7)
        assert ((q - w).abs() <= step / 2 + 1e-6).all(), name
        assert not torch.equal(q, w), name


def test_finetune_command_lowers_heldout_loss_and_loads_in_transformers(pairs, text, tmp_path):
    """`python -m edge_mtp.train.demo finetune` (the fine-tune scenario's first step) continues a target on
    new text: held-out loss falls, and transformers loads the output with the same logits as ours."""
    from transformers import AutoModelForCausalLM

    from edge_mtp.train.demo import main as demo_main

    source, out, report = pairs.dirs("tiny-e2b")[0], tmp_path / "ft", tmp_path / "ft.json"
    assert demo_main(["finetune", str(source), str(text), "-o", str(out), "--steps", "8", "--batch", "4",
                      "--lr", "3e-3", "--warmup", "0", "--seq-len", "32", "--threads", "1",
                      "--report", str(report)]) == 0
    result = json.loads(report.read_text())
    assert result["heldout_loss_after"] < result["heldout_loss_before"] - 0.1, result
    ours, tcfg = load_target(out, "float32")
    before, _ = load_target(source, "float32")
    assert not torch.equal(ours.embed_tokens.weight, before.embed_tokens.weight)
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32, attn_implementation="eager").eval()
    prompt = pairs.prompts("tiny-e2b")[0]
    backend = TorchBackend(ours, tcfg, None, context=len(prompt))
    with torch.no_grad():
        theirs = model(torch.tensor([prompt])).logits[0, -1]
    assert torch.allclose(torch.from_numpy(backend.prefill(prompt).logits[-1]), theirs, rtol=1e-4, atol=1e-4)


def test_teacher_quant_distils_against_the_fake_quantized_target(pairs, text, tmp_path):
    """`--teacher-quant int8`: the teacher is the target with every matmul/table weight replaced by its
    int8 round trip (train.fakequant), norms untouched; nothing is written before training."""
    from edge_mtp.train.drafter import prepare
    from edge_mtp.train.fakequant import fake_quantize

    o = _options(pairs, text, tmp_path / "drafter", teacher_quant="int8")
    teacher = dict(prepare(o).target.named_parameters())
    source, _ = load_target(o.target, "float32")
    for name, w in source.named_parameters():
        expected = fake_quantize(name, w, "int8") if w.dim() == 2 else w
        assert torch.equal(teacher[name], expected), name
    assert not o.out.exists() and not checkpoint_dir(o.out).exists()
