"""Weight quantization, one module per export format (the model code knows nothing of it).

`schemes`: the numpy quantizers (int8/int4, per row or per block); `recipes`: which weight gets which
scheme per `--quant` mode; `tflite` / `onnx`: bind the weights into a converted graph, streaming them
from the checkpoint and quantizing tensor by tensor.
"""

from edge_mtp.quantize.recipes import LITERT_MODES, ONNX_MODES, ONNX_QUANT_MODES, QUANT_MODES
from edge_mtp.quantize.tflite import fix_zero_scales

__all__ = ["LITERT_MODES", "ONNX_MODES", "ONNX_QUANT_MODES", "QUANT_MODES", "fix_zero_scales"]
