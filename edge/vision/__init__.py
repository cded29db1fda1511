"""Cameras and the ONNX vehicle counter: frames in, per-lane presence, counts and queues out."""
