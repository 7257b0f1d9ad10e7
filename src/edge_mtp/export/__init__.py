"""Exporters: the one model definition -> LiteRT `.tflite` sections in a `.litertlm` bundle (and ONNX)."""
