"""The vehicle detector the project trains from simulator renders, and its ONNX export."""
