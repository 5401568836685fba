"""Running a colorizer: the one prediction function, and the precision it runs in."""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass

import torch

from .decoding import decode, entropy
from .settings import DecodeConfig


def cpu_supports_bf16() -> bool:
    """True where the CPU has native bfloat16 units (AVX-512 BF16 / AMX), where autocast pays."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
        return "avx512_bf16" in flags or "amx_bf16" in flags
    except OSError:
        return False


PRECISIONS = ("auto", "float32", "bfloat16")


def _seconds(fn, reps: int) -> float:
    fn()  # warm-up: kernels chosen, caches filled
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


def bf16_pays(
    model: torch.nn.Module, example: torch.Tensor, train: bool = False, min_gain: float = 1.15, reps: int = 2
) -> tuple[bool, dict]:
    """Whether bfloat16 autocast is measurably faster than float32 for this model and input here.

    CPUs differ from one machine to the next: with native bf16 (AVX-512 BF16, AMX) autocast about
    doubles the speed; without, it is emulated and many times slower. So it is measured, forward
    (and backward when `train`) on `example`, not assumed. On CUDA bf16 is taken where supported."""
    device = example.device
    if device.type == "cuda":
        ok = torch.cuda.is_bf16_supported()
        return ok, {"precision": "bfloat16" if ok else "float32", "measured": False}

    def step(bf16: bool):
        def run():
            with torch.set_grad_enabled(train), autocast(device, bf16):
                out = model(example).float()
            if train:
                out.mean().backward()
                model.zero_grad(set_to_none=True)

        return run

    was_training = model.training
    state = {k: v.clone() for k, v in model.state_dict().items()} if train else None  # BatchNorm statistics move in train mode
    try:
        fp32 = _seconds(step(False), reps)
        bf16 = _seconds(step(True), reps)
    finally:
        if state is not None:
            model.load_state_dict(state)
        model.train(was_training)
    use = fp32 / bf16 >= min_gain
    return use, {
        "precision": "bfloat16" if use else "float32",
        "measured": True,
        "float32_s": fp32,
        "bfloat16_s": bf16,
        "speedup": fp32 / bf16,
    }


def autocast(device: torch.device, bf16: bool):
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


@dataclass
class Prediction:
    """The network's answer for a batch at its output resolution (a quarter of the input): the
    distribution over bins per pixel, decoded on demand by any of the decoders."""

    logits: torch.Tensor | None  # (B, Q, h, w) float32
    regressed: torch.Tensor | None = None  # (B, 2, H, W): ab itself, from a network that regresses it (SIGGRAPH17)

    def ab(self, cfg: DecodeConfig, centres: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 2, h, w); `weights` (the bin set's rebalancing weights) serve the `confident` decode.
        (A regressed ab has nothing to decode: `colorize.decoded` hands it over as it is.)"""
        return decode(self.logits, centres, cfg, weights)

    def doubt(self) -> torch.Tensor:
        """(B, h, w) entropy of the predicted distribution / log Q, in [0, 1]; 0 where there is no
        distribution (a regressing network says nothing of its doubt)."""
        if self.logits is None:
            B, _, H, W = self.regressed.shape
            return torch.zeros((B, H // 4, W // 4))
        return entropy(self.logits) / math.log(self.logits.shape[1])


def inference_device() -> torch.device:
    """Where restoration runs its network: the GPU when there is one."""
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


@torch.no_grad()
def predict(model: torch.nn.Module, L: torch.Tensor, bf16: bool = False, hints: torch.Tensor | None = None) -> Prediction:
    """L (B, 1, S, S) in [0, 100] -> Prediction on the model's device: autocast and forward, in one
    place for every caller. `hints` (B, 3, S, S) for a model with hint input (ab, mask)."""
    L = L.to(next(model.parameters()).device)
    extra = (hints.to(L.device).contiguous(memory_format=torch.channels_last),) if hints is not None else ()
    with autocast(L.device, bf16):
        out = model(L.contiguous(memory_format=torch.channels_last), *extra).float()
    return Prediction(None, out) if getattr(model, "regression", False) else Prediction(out)
