"""The ONNX format: writing a model as one self-contained .onnx file, and running one in ONNX Runtime.

    write(model, Path("model.onnx"))                   # `tuner export --format onnx`
    OnnxModel(Path("model.onnx"))                      # a torch module, for load_exported and `tuner evaluate`
    OnnxModel(blob, device="cuda", threads=2)          # the benchmark's "onnxruntime" rows

The one place an InferenceSession is built, and the graph's input and output names live.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from tuner.core.errors import CheckpointError, ExportError
from tuner.learn.model import StudentCNN

INPUT_NAME, OUTPUT_NAME = "images", "teacher"


def runtime() -> Any:
    """The onnxruntime module, or a one-line error saying how to install it."""
    try:
        import onnxruntime
    except ImportError:
        raise CheckpointError("ONNX needs onnx, onnxscript and onnxruntime; pip install 'tuner[onnx]'") from None
    return onnxruntime


def write(model: StudentCNN, path: Path) -> None:
    """One .onnx file with the weights inside, taking any batch size."""
    try:
        runtime()  # fail before exporting when the runtime to verify with is missing
    except CheckpointError as exc:
        raise ExportError(str(exc)) from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.rand(2, *model.config.in_shape),),
            str(path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes={"x": {0: torch.export.Dim("batch")}},
            verbose=False,
            external_data=False,
        )


class OnnxModel(torch.nn.Module):
    """An ONNX file (its path or bytes) as a module on [0, 1] images; on "cuda", ONNX Runtime's CUDA provider."""

    def __init__(self, source: Path | bytes, device: str = "cpu", threads: int | None = None) -> None:
        super().__init__()
        ort = runtime()
        provider = "CUDAExecutionProvider" if device == "cuda" else "CPUExecutionProvider"
        if provider not in ort.get_available_providers():
            raise CheckpointError(f"ONNX Runtime here has no {provider}; install onnxruntime-gpu for GPU rows")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or 0  # 0: ONNX Runtime's own choice
        self.session = ort.InferenceSession(source if isinstance(source, bytes) else str(source), options, [provider])
        self.device = device

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Host memory in and out, as a serving process hands it over, also for the CUDA provider.
        out = self.session.run(None, {INPUT_NAME: x.float().cpu().numpy()})[0]
        return torch.from_numpy(out).to(self.device)
