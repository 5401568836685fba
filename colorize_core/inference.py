"""Running a colorizer: logits at the working size, decoded ab upsampled to the input size."""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from .decoding import DecodeConfig, decode


def cpu_supports_bf16() -> bool:
    """True where the CPU has native bfloat16 units (AVX-512 BF16 / AMX), where autocast pays."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
        return "avx512_bf16" in flags or "amx_bf16" in flags
    except OSError:
        return False


def autocast(device: torch.device, bf16: bool):
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


@torch.no_grad()
def predict_logits(model: torch.nn.Module, L: torch.Tensor, bf16: bool = False) -> torch.Tensor:
    """L (B, 1, H, W) in [0, 100] -> float32 logits (B, Q, H/4, W/4)."""
    with autocast(L.device, bf16):
        return model(L).float()


def decode_to_size(logits: torch.Tensor, centres: torch.Tensor, cfg: DecodeConfig, size: tuple[int, int]) -> torch.Tensor:
    """(B, Q, h, w) -> (B, 2, H, W) ab, decoded at the network's resolution then upsampled bilinearly."""
    ab = decode(logits, centres, cfg)
    return F.interpolate(ab, size=size, mode="bilinear", align_corners=False)


@torch.no_grad()
def predict_ab(
    model: torch.nn.Module, L: torch.Tensor, centres: torch.Tensor, cfg: DecodeConfig = DecodeConfig(), bf16: bool = False
) -> torch.Tensor:
    """L (B, 1, H, W) -> ab (B, 2, H, W)."""
    return decode_to_size(predict_logits(model, L, bf16), centres, cfg, tuple(L.shape[-2:]))
