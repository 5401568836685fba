"""Benchmark helpers: best-of-n wall time and a printed ratio against a named baseline."""

from __future__ import annotations

import os
import time
from typing import Callable

# Setting all four runs every benchmark as on a CPU without AVX-512 (torch's kernels, oneDNN's
# convolutions, MKL's matrix products, the compiled join), to measure both regimes on one machine
# (`make bench-avx2`; without MKL's cap the peak's product ran at full AVX-512 speed).
CAPS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "NUMBA_CPU_NAME")


def capped() -> dict[str, str]:
    """The instruction-set caps set for this run: bf16 is then emulated, whatever the CPU has."""
    return {k: os.environ[k] for k in CAPS if k in os.environ}


def best_of(fn: Callable[[], object], repeat: int = 3) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def best_warm(fn: Callable[[], object], repeat: int = 3) -> float:
    """Best of n after one warm-up call (kernels chosen, pages faulted in, lazy engines compiled)."""
    fn()
    return best_of(fn, repeat)[0]


def report(name: str, ours_s: float, base_s: float, baseline: str, target: float | None = None) -> bool:
    ratio = base_s / ours_s
    ok = target is None or ratio >= target
    goal = f" (target >= {target:g}x: {'met' if ok else 'MISSED'})" if target else ""
    print(f"{name}: {ours_s * 1e3:9.1f} ms vs {baseline} {base_s * 1e3:9.1f} ms -> {ratio:6.2f}x{goal}", flush=True)
    return ok
