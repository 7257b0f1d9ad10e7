"""benchmarks/perf_profile.py's reading of `perf script` text: only samples taken inside a signature run
count, each under its leaf kernel and under the TFLite op it belongs to (a builtin kernel or the XNNPACK
delegate). The text below has the shape `perf script` prints (header line, then one frame per line)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "perf_profile.py"

PERF_TEXT = """\
python 123  9033.1:     500000 cpu-clock:ppp:
\t    1a2b xnn_f32_gemm_minmax_ukernel_7x32__avx512f_broadcast+0x1c (/venv/libpywrap_litert_common.so)
\t    1a2c xnn_run_operator_with_index+0x9 (/venv/libpywrap_litert_common.so)
\t    1a2d tflite::xnnpack::(anonymous namespace)::SubgraphInvoke(TfLiteContext*, TfLiteNode*)+0x40 (/venv/l.so)
\t    1a2e tflite::Subgraph::InvokeImpl()+0x11 (/venv/l.so)
\t    1a2f tflite::impl::SignatureRunner::Invoke()+0x5 (/venv/l.so)

python 123  9033.2:     500000 cpu-clock:ppp:
\t    2a2b xnn_f32_gemm_minmax_ukernel_7x32__avx512f_broadcast+0x20 (/venv/libpywrap_litert_common.so)
\t    1a2d tflite::xnnpack::(anonymous namespace)::SubgraphInvoke(TfLiteContext*, TfLiteNode*)+0x40 (/venv/l.so)
\t    1a2f tflite::impl::SignatureRunner::Invoke()+0x5 (/venv/l.so)

python 123  9033.3:     500000 cpu-clock:ppp:
\t    3a2b tflite::ops::builtin::embedding_lookup::EvalHybrid(TfLiteContext*, TfLiteNode*, TfLiteTensor const*)+0x290 (/venv/l.so)
\t    3a2c tflite::Subgraph::InvokeImpl()+0x11 (/venv/l.so)
\t    1a2f tflite::impl::SignatureRunner::Invoke()+0x5 (/venv/l.so)

python 123  9033.4:     500000 cpu-clock:ppp:
\t    4a2b _PyEval_EvalFrameDefault+0x77 (/usr/bin/python3.11)
\t    4a2c main+0x1 (/usr/bin/python3.11)
"""


def test_samples_inside_signature_runs_by_kernel_and_op():
    spec = importlib.util.spec_from_file_location("perf_profile", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    samples, kernels, ops = module.shares(PERF_TEXT)
    assert samples == 3  # the Python sample is not inside a signature run
    assert kernels == {"xnn_f32_gemm_minmax_ukernel_7x32__avx512f_broadcast": 2 / 3,
                       "tflite::ops::builtin::embedding_lookup::EvalHybrid(TfLiteContext*, TfLiteNode*, "
                       "TfLiteTensor const*)": 1 / 3}
    assert ops == {module.XNNPACK: 2 / 3, "embedding_lookup": 1 / 3}
