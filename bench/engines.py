"""Inference engines side by side on the same batches: torch eager (what restore runs), torch.compile,
OpenVINO and ONNX Runtime, each in the precisions it offers on this CPU, for the bundled `small`
model and the ECCV16 layout. A candidate's speed counts only when it passes the accuracy gate: the
mean |delta ab| of its decoded colours against float32 eager at most 1 unit, over real photographs
(decoded by each model's own decode).

Engines that are not installed are listed as such; nothing here is needed to restore.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Callable

import numpy as np
import torch

from bench.timing import best_warm
from colorize_core.colorize import network_input
from colorize_core.decoding import decode
from colorize_core.imageio import decode_image
from colorize_core.inference import cpu_supports_bf16
from colorize_core.models import Colorizer, ModelConfig
from colorize_core.package import load_package
from colorize_core.settings import DecodeConfig
from tasks.model_resolve import BUNDLED_MODEL_DIR
from tests.photos import real_photo_bytes

BATCH, SIZE, GATE = 8, 256, 1.0  # the network bound's batch, the restore input, |delta ab| units
Engine = Callable[[np.ndarray], np.ndarray]  # L (B, 1, S, S) float32 -> logits (B, Q, S/4, S/4)


def photos_L() -> torch.Tensor:
    """(BATCH, 1, SIZE, SIZE): real photographs' L, as restore feeds the network."""
    photos = list(real_photo_bytes().items())
    Ls = [network_input(decode_image(data, name), SIZE) for name, data in (photos * BATCH)[:BATCH]]
    return torch.stack(Ls)[:, None].float()


def torch_engine(model, bf16: bool, compiled: bool = False) -> Engine:
    net = torch.compile(model, dynamic=False) if compiled else model

    def run(L: np.ndarray) -> np.ndarray:
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            return net(torch.from_numpy(L).contiguous(memory_format=torch.channels_last)).float().numpy()

    return run


def openvino_engine(model, L: torch.Tensor, precision: str) -> Engine:
    import openvino as ov

    compiled = ov.Core().compile_model(ov.convert_model(model, example_input=L), "CPU",
                                       {"INFERENCE_PRECISION_HINT": precision, "INFERENCE_NUM_THREADS": str(torch.get_num_threads())})  # fmt: skip
    request = compiled.create_infer_request()
    return lambda x: request.infer({0: x})[0].copy()


def onnxruntime_engine(model, L: torch.Tensor, folder: str, int8: bool = False) -> Engine:
    import onnxruntime as ort

    path = os.path.join(folder, "model.onnx")
    torch.onnx.export(model, (L,), path, dynamo=False, input_names=["L"], output_names=["logits"], opset_version=17)
    if int8:  # static post-training quantization, calibrated on the same photographs
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

        class Photos(CalibrationDataReader):
            def __init__(self):
                self.batches = iter([{"L": L.numpy()}])

            def get_next(self):
                return next(self.batches, None)

        q = os.path.join(folder, "model.int8.onnx")
        quantize_static(path, q, Photos(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        path = q
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"L": x})[0]


def candidates(model, L: torch.Tensor, folder: str) -> dict[str, Callable[[], Engine]]:
    """name -> how to build the engine (built one at a time: conversions take memory and minutes)."""
    native = cpu_supports_bf16()
    out: dict[str, Callable[[], Engine]] = {"torch eager fp32": lambda: torch_engine(model, False)}
    if native:
        out["torch eager bf16"] = lambda: torch_engine(model, True)
    out["torch.compile fp32"] = lambda: torch_engine(model, False, compiled=True)
    if native:
        out["torch.compile bf16"] = lambda: torch_engine(model, True, compiled=True)
    out["OpenVINO f32"] = lambda: openvino_engine(model, L, "f32")
    if native:
        out["OpenVINO bf16"] = lambda: openvino_engine(model, L, "bf16")
    out["ONNX Runtime fp32"] = lambda: onnxruntime_engine(model, L, folder)
    out["ONNX Runtime int8 (static, QDQ)"] = lambda: onnxruntime_engine(model, L, folder, int8=True)
    return out


def table(name: str, model, centres: torch.Tensor, dec: DecodeConfig, weights) -> list[str]:
    L = photos_L()
    x = L.numpy()
    ab = lambda logits: decode(torch.from_numpy(np.ascontiguousarray(logits)).float(), centres, dec, weights)  # (B, 2, h, w)
    lines = [f"{name}: {BATCH} photos at {SIZE}, {torch.get_num_threads()} threads, decode {dec.method}"]
    reference, eager = None, None
    with tempfile.TemporaryDirectory() as folder:
        for engine_name, build in candidates(model, L, folder).items():
            try:
                t0 = time.perf_counter()
                engine = build()
                out = engine(x)  # the first call compiles where the engine compiles lazily
                ready = time.perf_counter() - t0
            except Exception as e:  # noqa: BLE001 - an engine missing or failing is a row, not the end of the table
                lines.append(f"  {engine_name:34s} not available: {type(e).__name__}: {str(e).splitlines()[0][:90] if str(e) else ''}")
                continue
            rate = BATCH / best_warm(lambda: engine(x))
            colours = ab(out)
            if reference is None:
                reference, eager = colours, rate
            diff = float((colours - reference).abs().mean())
            verdict = "passes" if diff <= GATE else "FAILS"
            lines.append(f"  {engine_name:34s} {rate:7.2f} img/s  {rate / eager:5.2f}x eager fp32  |delta ab| {diff:5.2f} ({verdict})  ready in {ready:5.1f} s")
    return lines


def main() -> bool:
    torch.set_num_threads(os.cpu_count() or 1)
    pkg = load_package(BUNDLED_MODEL_DIR)
    centres = torch.from_numpy(pkg.bins.centres).float()
    weights = torch.from_numpy(pkg.bins.weights).float()
    print("\n".join(table("bundled small", pkg.model, centres, pkg.decode, weights)), flush=True)
    eccv16 = Colorizer(ModelConfig("eccv16"), centres).eval().to(memory_format=torch.channels_last)
    print("\n".join(table("ECCV16 layout (random weights)", eccv16, centres, DecodeConfig(), None)), flush=True)
    return True


if __name__ == "__main__":
    main()
