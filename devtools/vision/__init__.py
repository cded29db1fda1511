"""The detector's evaluation on hand-checked real frames (truth, realeval) and the small
ONNX graphs of the model contract built for tests and benches (synthetic)."""
