"""ONNX frontend, graph IR, host ops and scheduler (bitlet.compiler)."""
