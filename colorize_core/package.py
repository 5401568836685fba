"""A model package: everything needed to colorize, as plain files that load without unpickling code.

weights.pt   the state dict (torch.save; loaded with weights_only=True)
config.json  model config, decoding defaults, name / version / provenance
bins.npz     the bin set (BinSet format, with its checksum)
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field

import torch

from .bins import BinSet
from .config import from_dict
from .models import Colorizer, ModelConfig
from .settings import DecodeConfig
from .siggraph17 import Siggraph17

PACKAGE_FORMAT = 1


@dataclass
class ColorizerPackage:
    model: Colorizer
    bins: BinSet
    decode: DecodeConfig = DecodeConfig()
    meta: dict = field(default_factory=dict)  # name, version, training provenance, validation figures

    @property
    def name(self) -> str:
        return self.meta.get("name", "colorizer")

    @property
    def version(self) -> str:
        return str(self.meta.get("version", "0"))


def save_package(directory: str, pkg: ColorizerPackage) -> dict[str, str]:
    """Writes the three files; returns their paths by role."""
    os.makedirs(directory, exist_ok=True)
    paths = {k: os.path.join(directory, f) for k, f in (("weights", "weights.pt"), ("config", "config.json"), ("bins", "bins.npz"))}
    torch.save(
        {k: v.detach().cpu().clone(memory_format=torch.contiguous_format) for k, v in pkg.model.state_dict().items()}, paths["weights"]
    )  # plain strides: the same model, the same bytes
    config = {
        "format": PACKAGE_FORMAT,
        "model": dataclasses.asdict(pkg.model.cfg),
        "decode": dataclasses.asdict(pkg.decode),
        "bins_checksum": pkg.bins.checksum,
        "meta": pkg.meta,
    }
    with open(paths["config"], "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
    pkg.bins.save(paths["bins"])
    return paths


def build_model(cfg: ModelConfig, centres: torch.Tensor | None = None) -> torch.nn.Module:
    """The network a config names: one of the project's architectures, or an imported published layout."""
    if cfg.arch == "siggraph17":
        return Siggraph17(cfg, centres)
    return Colorizer(cfg, centres)


def load_package(
    directory: str | None = None, *, weights: str | None = None, config: str | None = None, bins: str | None = None
) -> ColorizerPackage:
    """From a package directory, or from the three file paths (as MLflow hands artifacts over)."""
    weights = weights or os.path.join(directory, "weights.pt")
    config = config or os.path.join(directory, "config.json")
    bins = bins or os.path.join(directory, "bins.npz")
    with open(config) as f:
        cfg = json.load(f)
    if cfg.get("format") != PACKAGE_FORMAT:
        raise ValueError(f"{config}: unsupported package format {cfg.get('format')}")
    bin_set = BinSet.load(bins)
    if bin_set.checksum != cfg["bins_checksum"]:
        raise ValueError(f"{bins}: bin set does not match the model's ({cfg['bins_checksum'][:12]})")
    model = build_model(ModelConfig(**cfg["model"]), torch.from_numpy(bin_set.centres))
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    model.eval().to(memory_format=torch.channels_last)  # oneDNN's convolutions are faster in NHWC (16 %, ECCV16 bf16)
    return ColorizerPackage(model=model, bins=bin_set, decode=from_dict(DecodeConfig, cfg["decode"]), meta=cfg.get("meta", {}))


def package_from_checkpoint(path: str, bins: BinSet, meta: dict | None = None) -> ColorizerPackage:
    """A package from a training checkpoint (for shipping the best checkpoint of a long run)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state["bins_checksum"] != bins.checksum:
        raise ValueError(f"{path} was trained with another bin set ({state['bins_checksum'][:12]})")
    model = Colorizer(dataclasses.replace(ModelConfig(**state["model_config"]), q=bins.q))
    model.load_state_dict(state["model"])
    return ColorizerPackage(model.eval(), bins, meta=dict(meta or {}, checkpoint=os.path.basename(path), step=int(state["step"])))
