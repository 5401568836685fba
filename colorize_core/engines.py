"""Which engine runs a model's forward pass here: torch eager (always there) or OpenVINO (where it is
installed), each in float32 or, with native bf16 units, bfloat16. CPUs differ, and so does the
fastest engine for a model (on a Xeon with AMX: torch eager for `small`, OpenVINO for the ECCV16
layout), so it is measured, not assumed: the fastest candidate whose decoded colours stay within
GATE ab units (mean) of float32 torch eager on real photographs wins. The caller keeps the choice
(tasks.engine_choice caches it per model and CPU)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import time
import warnings
import weakref
from dataclasses import dataclass
from pathlib import Path

import torch

from .choices import ENGINE_PRECISIONS, engine_parts
from .inference import Prediction, cpu_supports_bf16, predict

GATE = 1.0  # mean |delta ab| against float32 torch eager, in ab units
MIN_GAIN = 1.1  # a candidate must be this much faster than the best so far to replace it (timing noise)


@dataclass(frozen=True)
class Engine:
    name: str = "torch"
    precision: str = "float32"

    @property
    def bf16(self) -> bool:
        return self.precision == "bfloat16"

    def __str__(self) -> str:
        return f"{self.name} {self.precision}"

    @classmethod
    def parse(cls, text: str) -> "Engine":
        return cls(*engine_parts(text))


def openvino_installed() -> bool:
    return importlib.util.find_spec("openvino") is not None


def candidates(model: torch.nn.Module) -> list[Engine]:
    """What can run this model here. OpenVINO runs the L-only forward on the CPU; a model with hint
    input keeps to torch, which takes the hints."""
    on_cpu = next(model.parameters()).device.type == "cpu"
    native = cpu_supports_bf16() if on_cpu else torch.cuda.is_bf16_supported()
    out = [Engine("torch", p) for p in ENGINE_PRECISIONS if p == "float32" or native]
    if on_cpu and openvino_installed() and not getattr(getattr(model, "cfg", None), "hint_input", False):
        out += [Engine("openvino", p) for p in ENGINE_PRECISIONS if p == "float32" or native]
    return out


_OPENVINO: "weakref.WeakKeyDictionary[torch.nn.Module, dict]" = weakref.WeakKeyDictionary()  # model -> {key: converted or compiled}


def _compiled(model: torch.nn.Module, precision: str, size: tuple[int, int]):
    """The model for OpenVINO at this input size (any batch): converted once per size, compiled once
    per precision, in this process."""
    import openvino as ov

    cache = _OPENVINO.setdefault(model, {})
    if size not in cache:
        with warnings.catch_warnings():  # the conversion traces with torch.jit, which warns that it is deprecated
            warnings.simplefilter("ignore", DeprecationWarning)
            cache[size] = ov.convert_model(model, example_input=(torch.rand(1, 1, *size) * 100,), input=[ov.PartialShape([-1, 1, *size])])
    if (precision, size) not in cache:
        config = {
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bfloat16" else "f32",
            "INFERENCE_NUM_THREADS": str(torch.get_num_threads()),
            "ENABLE_CPU_PINNING": False,  # pinned, two one-thread workers took the same core: half the speed (7.3 against 14.5 img/s each)
        }
        cache[precision, size] = ov.Core().compile_model(cache[size], "CPU", config)
    return cache[precision, size]


def prepare(model: torch.nn.Module, engine: Engine, size: tuple[int, int], folder: Path | None = None) -> None:
    """Makes `engine` ready for inputs of `size`: for OpenVINO, the model converted before and saved in
    `folder` is read back (0.1 s against 1.7 s to convert `small` again), else converted and saved there."""
    if engine.name != "openvino":
        return
    import openvino as ov

    cache, saved = _OPENVINO.setdefault(model, {}), folder / "model.xml" if folder else None
    if size not in cache and saved is not None and saved.exists():
        cache[size] = ov.Core().read_model(str(saved))
    _compiled(model, engine.precision, size)
    if saved is not None and not saved.exists():
        tmp = folder.with_name(f"{folder.name}.{os.getpid()}.tmp")
        ov.save_model(cache[size], str(tmp / "model.xml"), compress_to_fp16=False)  # the weights as measured
        shutil.rmtree(folder, ignore_errors=True)  # a folder that lost its model.xml
        os.replace(tmp, folder)  # a reader sees the whole model or none (callers serialise the writers)


def run(model: torch.nn.Module, L: torch.Tensor, engine: Engine, hints: torch.Tensor | None = None) -> Prediction:
    """L (B, 1, S, S) in [0, 100] -> Prediction, in `engine`; hints go to torch, which takes them."""
    if engine.name != "openvino" or hints is not None:
        return predict(model, L, engine.bf16, hints)
    out = torch.from_numpy(_compiled(model, engine.precision, tuple(L.shape[-2:]))(L.float().numpy())[0].copy())
    return Prediction(None, out) if getattr(model, "regression", False) else Prediction(out)


def _seconds_per_image(fn, n: int, reps: int = 3) -> float:
    fn()  # warm-up: kernels chosen, an engine's compilation done
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best / n


def choose(model: torch.nn.Module, L: torch.Tensor, colours, engines: list[Engine] | None = None) -> tuple[Engine, dict]:
    """The fastest engine for `model` on photographs' L (B, 1, S, S) whose colours (`colours`:
    Prediction -> ab) pass the gate against float32 torch eager, and each candidate's figures."""
    engines = engines or candidates(model)
    reference = colours(run(model, L, Engine()))
    figures, best, best_s = {}, Engine(), float("inf")
    for e in engines:
        try:
            seconds = _seconds_per_image(lambda: run(model, L, e), len(L))
            diff = float((colours(run(model, L, e)) - reference).abs().mean())
        except Exception as err:  # noqa: BLE001 - an engine that cannot run this model is a candidate less
            figures[str(e)] = {"error": f"{type(err).__name__}: {str(err)[:200]}"}
            continue
        figures[str(e)] = {"seconds_per_image": seconds, "mean_ab_difference": diff, "passes": diff <= GATE}
        if diff <= GATE and seconds * MIN_GAIN < best_s:  # the first candidate, float32 torch eager, always passes
            best, best_s = e, seconds
    return best, figures
