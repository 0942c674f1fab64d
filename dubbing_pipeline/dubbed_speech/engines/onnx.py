"""The ONNX Runtime sessions of the Kokoro and Piper engines: CPU, sequential, a fixed thread count."""

from __future__ import annotations

import onnxruntime as ort


def ort_session(model: str, threads: int) -> ort.InferenceSession:
    """A CPU session of ``model`` on ``threads`` intra-op threads (the same bytes on every run)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, int(threads))
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
