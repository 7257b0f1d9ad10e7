"""fp16 activations (issue 12, item 4): greedy output with fp16 activations equals fp32, MTP on and off, on a
stand-in whose residual stream reaches the magnitudes of real Gemma hidden states, where a decomposed
RMSNorm's x² is far above fp16's largest value (65504). docs/tooling.md#fp16-activations has the findings.

Two fp16 paths are checked. LiteRT-LM's own default activation type (it logs "fp16" for the text decoder):
on this x86 CPU (no native fp16 arithmetic) it computed in fp32, so here that check only guards against
a change. And XNNPACK's FORCE_FP16 mode through `ai_edge_litert`, which does use fp16 here: every tensor
between ops is stored in fp16, as on a phone, but x86 has no fp16 arithmetic, so each op computes
inside in fp32 (ARM's fp16 kernels compute in fp16 too; not covered).
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


def test_fp16_activations_give_the_fp32_tokens_and_rounds(pairs, standin):
    """XNNPACK FORCE_FP16 against fp32 on the stand-in: same tokens and same drafts and acceptances per
    round, K = 0 and K = 4, 40 new tokens per prompt; both equal transformers."""
    fp32 = LiteRTBackend(standin[1], threads=1)
    fp16 = LiteRTBackend(standin[1], threads=1, xnnpack_flags=FORCE_FP16)
    probe = list(range(300, 341))
    # fp16 really is in effect: its logits differ from fp32's by fp16 rounding (measured 1.3e-2), where two
    # fp32 runs are identical
    assert np.abs(fp16.prefill(probe).logits - fp32.prefill(probe).logits).max() > 1e-3
    hf_target, _ = pairs.hf("tiny-e2b")
    accepted = 0
    for prompt in pairs.prompts("tiny-e2b")[:2]:
        for k in (0, BUNDLE_K):
            a, b = (generate(be, prompt, LoopConfig(draft_len=k, max_new_tokens=NEW)) for be in (fp32, fp16))
            assert len(a.tokens) == NEW and a.tokens == b.tokens
            assert [(r.drafts, r.accepted) for r in a.rounds] == [(r.drafts, r.accepted) for r in b.rounds]
            accepted += sum(r.accepted for r in b.rounds if r.drafts)
        assert a.tokens == hf_generate(hf_target, prompt, NEW)[0]  # scaling kept the function
    assert accepted > NEW  # the drafter's fp16 outputs were used, not just computed


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
