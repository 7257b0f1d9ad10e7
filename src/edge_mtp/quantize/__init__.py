"""Post-hoc weight quantization, one module per export format (the model code knows nothing of it).

`litert`: ai-edge-quantizer recipes on `.tflite` sections; `onnx`: onnxruntime's quantizers on `.onnx`
graphs. Both refuse a recipe that changed no weight (quantizers silently skip what they cannot do).
"""

from edge_mtp.quantize.litert import QUANT_MODES, fix_zero_scales, quantize_sections, weight_bytes

__all__ = ["QUANT_MODES", "fix_zero_scales", "quantize_sections", "weight_bytes"]
