"""The engine a worker restores in (see colorize_core.engines): forced by COLORIZE_ENGINE (`torch`,
`openvino bfloat16`, ...), else measured once per model, working size and CPU and kept in
<state>/cache/engines.json, so the measurement (seconds, an OpenVINO conversion) is paid by the
first run on a machine and not by every worker of every run."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

from colorize_core.colorize import choose_engine, network_input
from colorize_core.engines import Engine, candidates, prepare
from colorize_core.imageio import decode_image
from tasks.state import SAMPLE_COLLECTION, state_dir

CAPS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "NUMBA_CPU_NAME", "ONEDNN_DEFAULT_FPMATH_MODE")  # what changes the kernels
FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def forced_engine() -> Engine | None:
    """COLORIZE_ENGINE as an Engine; None for unset or `auto`. A bad value is a ValueError naming it."""
    text = os.environ.get("COLORIZE_ENGINE", "").strip()
    if text in ("", "auto"):
        return None
    try:
        return Engine.parse(text)
    except ValueError as e:
        raise ValueError(f"COLORIZE_ENGINE: {e}") from None


def cpu_key() -> str:
    """What makes one machine's measurement another's: CPU model and units, threads, kernel caps, versions."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        info = ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "unknown CPU")
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))
    caps = ",".join(f"{k}={os.environ[k]}" for k in CAPS if os.environ.get(k))
    units = "+".join(f for f in FLAGS if f in flags)
    return f"{model} [{units}] threads={torch.get_num_threads()} {caps} torch={torch.__version__} openvino={_openvino_version()}"


def _openvino_version() -> str:
    try:
        return version("openvino")
    except PackageNotFoundError:
        return "none"


def gate_photos(size: int) -> torch.Tensor:
    """(B, 1, S, S): the sample collection's photographs as the network sees them."""
    Ls = [network_input(decode_image(p.read_bytes(), p.name), size) for p in sorted(SAMPLE_COLLECTION.iterdir()) if p.is_file()]
    return torch.stack(Ls)[:, None].float()


@contextlib.contextmanager
def _locked(path: Path):
    """The cache, held by one process at a time: the second worker of a new machine waits for the
    first's measurement instead of measuring beside it (both would time a shared, busy CPU) and
    finds OpenVINO's model saved instead of saving it over the first's."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def engine_for(pkg, model_sha256: str, size: int) -> tuple[Engine, str]:
    """The engine and how it was chosen ('set by COLORIZE_ENGINE', 'measured', 'measured before')."""
    cache = state_dir() / "cache"
    with _locked(cache / "engines.json"):  # one worker measures and saves OpenVINO's model; the next reads both
        engine, how = _choose(pkg, model_sha256, size, cache / "engines.json")
        prepare(pkg.model, engine, (size, size), cache / "openvino" / f"{model_sha256[:16]}-{size}-{_openvino_version()}")
    return engine, how


def _choose(pkg, model_sha256: str, size: int, path: Path) -> tuple[Engine, str]:
    forced = forced_engine()
    if forced is not None:
        if forced not in candidates(pkg.model):
            raise ValueError(f"COLORIZE_ENGINE={forced}: cannot run here (candidates: {', '.join(map(str, candidates(pkg.model)))})")
        return forced, "set by COLORIZE_ENGINE"
    key = f"{model_sha256} size={size} {cpu_key()}"
    known = json.loads(path.read_text()) if path.exists() else {}
    if key in known:
        return Engine.parse(known[key]["engine"]), "measured before"
    engine, figures = choose_engine(pkg, gate_photos(size))
    known[key] = {"engine": str(engine), "candidates": figures}
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(known, indent=1))
    os.replace(tmp, path)  # a reader never sees half a file
    return engine, "measured"
