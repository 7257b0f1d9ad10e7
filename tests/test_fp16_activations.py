"""fp16 activations (issue 12, item 4): greedy output with fp16 activations equals fp32, MTP on and off, on a
stand-in whose residual stream reaches the magnitudes of real Gemma hidden states, where a decomposed
RMSNorm's x² is far above fp16's largest value (65504). docs/tooling.md#fp16-activations has the findings.

Two fp16 paths are checked. LiteRT-LM's own default activation type (it logs "fp16" for the text decoder),
and XNNPACK's FORCE_FP16 mode through `ai_edge_litert`: every tensor between ops is stored in fp16, as on a
phone. What happens inside an op depends on the CPU: an x86 without fp16 arithmetic (the AMD EPYC these
tests were written on) computes in fp32, and greedy text then equalled fp32 for 40 tokens; a CPU with it
(Intel Xeon with avx512_fp16, like ARM's fp16 kernels) computes in fp16, and on this random-weight stand-in
fp16 rounding flips near-tied tokens (the unscaled pair flips at the same positions, so it is rounding, not
overflow). So the token check is teacher-forced and skips near-ties (`CLEAR_MARGIN`).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from conftest import BUNDLE_CONTEXT, BUNDLE_K, BUNDLE_PREFILL
from hf_oracle import hf_generate

from edge_mtp.checkpoints.residual import norm_input_peaks, scale_residual
from edge_mtp.runtime import LoopConfig, generate
from edge_mtp.runtime.litert_backend import LiteRTBackend

GAIN = 256.0  # residual-stream gain; a power of two, so the scaled pair is the same function (scale_residual)
FORCE_FP16 = 0x4  # TFLITE_XNNPACK_DELEGATE_FLAG_FORCE_FP16 (tensorflow/lite/delegates/xnnpack/xnnpack_delegate.h)
FP16_MAX = 65504.0
NEW = 40
# fp16 rounding moved the stand-in's logits by up to 0.085 (Xeon with avx512_fp16, which computes in fp16);
# a token whose fp32 lead is 3x that must not change
CLEAR_MARGIN = 0.25


@pytest.fixture(scope="module")
def standin(pairs, tmp_path_factory):
    """(pair root, .litertlm) of tiny-e2b with its residual streams scaled by GAIN."""
    from edge_mtp.export.exporter import ExportOptions, export_litertlm

    root = tmp_path_factory.mktemp("fp16") / "standin"
    scale_residual(pairs.dirs("tiny-e2b")[0].parent, root, GAIN)
    bundle = root.parent / "standin.litertlm"
    export_litertlm(root / "target", root / "drafter", bundle,
                    ExportOptions("fp32", BUNDLE_K, BUNDLE_PREFILL, BUNDLE_CONTEXT))
    return root, bundle


def test_standin_overflows_a_decomposed_rmsnorm_in_fp16(pairs, standin):
    """transformers on the stand-in: the inputs of the residual-stream RMSNorms reach thousands, so x² and
    mean(x²) overflow fp16; and the stand-in generates what the unscaled pair generates."""
    prompt = pairs.prompts("tiny-e2b")[0]
    peak, mean_square, tokens = norm_input_peaks(standin[0] / "target", prompt, NEW)
    assert 1000 < peak < FP16_MAX  # the stream itself fits in fp16 (measured: 5946)
    assert mean_square > 10 * FP16_MAX  # measured: 2.85e6
    assert torch.isinf(torch.tensor(peak).half() ** 2)
    assert tokens == hf_generate(pairs.hf("tiny-e2b")[0], prompt, NEW)[0]


def _forced_logits(backend: LiteRTBackend, prompt: list[int], tokens: list[int]) -> np.ndarray:
    """[len(tokens), V]: the logits that chose each of `tokens` after `prompt` (teacher forcing, one decode
    per token)."""
    rows = [backend.prefill(prompt).logits[-1]]
    for i, token in enumerate(tokens[:-1]):
        rows.append(backend.verify([token], len(prompt) + i).logits[0])
    return np.stack(rows)


def test_fp16_activations_keep_every_clear_greedy_token(pairs, standin):
    """XNNPACK FORCE_FP16 against fp32 on the stand-in, teacher-forced along fp32's greedy text (40 tokens,
    which equal transformers'): fp16 picks the same token wherever fp32's top two logits are more than
    CLEAR_MARGIN apart (a norm whose x² overflows breaks nearly all of them); and fp16 with MTP (K = 4)
    gives exactly fp16's plain tokens, its drafts accepted."""
    fp32 = LiteRTBackend(standin[1], threads=1)
    fp16 = LiteRTBackend(standin[1], threads=1, xnnpack_flags=FORCE_FP16)
    probe = list(range(300, 341))
    # fp16 really is in effect: its logits differ from fp32's by fp16 rounding (measured 1.3e-2), where two
    # fp32 runs are identical
    assert np.abs(fp16.prefill(probe).logits - fp32.prefill(probe).logits).max() > 1e-3
    hf_target, _ = pairs.hf("tiny-e2b")
    clear_positions = accepted = 0
    for prompt in pairs.prompts("tiny-e2b")[:2]:
        tokens = generate(fp32, prompt, LoopConfig(draft_len=0, max_new_tokens=NEW)).tokens
        assert tokens == hf_generate(hf_target, prompt, NEW)[0]  # scaling kept the function
        ref, half = _forced_logits(fp32, prompt, tokens), _forced_logits(fp16, prompt, tokens)
        top2 = np.sort(ref, axis=1)[:, -2:]
        clear = top2[:, 1] - top2[:, 0] > CLEAR_MARGIN
        assert (half.argmax(axis=1)[clear] == np.asarray(tokens)[clear]).all()
        clear_positions += int(clear.sum())
        plain, spec = (generate(fp16, prompt, LoopConfig(draft_len=k, max_new_tokens=NEW)) for k in (0, BUNDLE_K))
        assert len(spec.tokens) == NEW and spec.tokens == plain.tokens
        accepted += sum(r.accepted for r in spec.rounds if r.drafts)
    assert clear_positions >= NEW // 2  # measured 38 of the 2 x 40 positions: the check is not vacuous
    assert accepted > NEW // 2  # the drafter's fp16 outputs were used, not just computed


def test_litert_lm_default_activations_equal_fp32(pairs, standin, tmp_path, monkeypatch):
    """The official engine on the stand-in, its default activation type against FLOAT32, MTP on and off:
    the same text, which starts with our runtime's first 32 tokens."""
    import litert_lm

    from edge_mtp.runtime.tokenizer import TextCodec

    path = shutil.copy(standin[1], tmp_path / "model.litertlm")  # it writes caches beside it
    monkeypatch.setenv("HOME", str(tmp_path))
    texts = {}
    for act in (None, litert_lm.ActivationDataType.FLOAT32):
        for speculative in (False, True):
            kw = {} if act is None else {"activation_data_type": act}
            engine = litert_lm.Engine(str(path), backend=litert_lm.Backend.CPU(thread_count=1), max_num_tokens=64,
                                      enable_speculative_decoding=speculative, cache_dir=str(tmp_path), **kw)
            session = engine.create_session(apply_prompt_template=False)
            session.run_prefill(["Hello world"])
            texts[(act, speculative)] = session.run_decode().texts[0]
            del session, engine
    assert len(set(texts.values())) == 1
    codec = TextCodec(standin[0] / "target")
    ours = generate(LiteRTBackend(path), codec.encode("Hello world"), LoopConfig(draft_len=0, max_new_tokens=32))
    assert len(ours.tokens) == 32 and texts[(None, True)].startswith(codec.decode(ours.tokens))
