"""A user's colorization settings (decode, upsampling, working size), in a module without heavy
imports: the command line and restore's flow make, check and record them without loading torch;
`decoding`, `upsample` and `colorize` do the work they name."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .choices import DECODES, UPSAMPLES

PAPER_TEMPERATURE = 0.38  # the paper's T for the annealed mean


@dataclass(frozen=True)
class DecodeConfig:
    method: str = "annealed-mean"  # annealed-mean | argmax | top-k | mean | confident
    temperature: float = PAPER_TEMPERATURE  # T of the annealed mean, top-k and confident
    top_k: int = 5  # bins kept by top-k
    prior_correction: float = 0.0  # confident: rho, how much of log w (rebalancing weights) is taken back off the logits
    confidence_low: float = 0.0  # confident: at or below this confidence (1 - H / log Q) the colour is grey
    confidence_high: float = 0.0  # confident: at or above this, full chroma; linear between

    def __post_init__(self):
        if self.method not in DECODES:
            raise ValueError(f"unknown decode {self.method!r}; choose one of {', '.join(DECODES)}")
        if self.temperature <= 0:
            raise ValueError("temperature must be positive")
        if self.confidence_high < self.confidence_low:
            raise ValueError("confidence_high must not be below confidence_low")

    def settings(self) -> dict:
        """What names this decode in manifests and provenance (only the fields its method uses)."""
        used = {"annealed-mean": ("temperature",), "top-k": ("temperature", "top_k"), "argmax": (), "mean": ()}
        keys = used.get(self.method, ("temperature", "prior_correction", "confidence_low", "confidence_high"))
        return {"decode": self.method, **{k: getattr(self, k) for k in keys}}


@dataclass(frozen=True)
class UpsampleConfig:
    method: str = "guided"  # guided | bilinear
    radius: int = 4  # guided: window radius at the working resolution (256 px)
    eps: float = 25.0  # guided: regulariser in L units squared; larger is closer to bilinear

    def __post_init__(self):
        if self.method not in UPSAMPLES:
            raise ValueError(f"unknown upsampling {self.method!r}; choose one of {', '.join(UPSAMPLES)}")


@dataclass(frozen=True)
class ColorizeConfig:
    decode: DecodeConfig | None = None  # None: the model package's own decode (fitted on validation data)
    upsample: UpsampleConfig = UpsampleConfig()
    size: int = 256  # the network's working size
    strip_rows: int = 64  # full-resolution rows joined per step (bounds memory, stays in cache)
    uncertainty: bool = False  # also make a picture of the model's doubt per image
    uncertainty_max_side: int = 2048  # the map is a guide, not an archival master

    def resolved(self, package_decode: DecodeConfig) -> "ColorizeConfig":
        return self if self.decode is not None else dataclasses.replace(self, decode=package_decode)

    @classmethod
    def from_options(cls, package_decode: DecodeConfig, decode=None, temperature=None, top_k=None, upsample=None, size=None,
                     uncertainty=False) -> "ColorizeConfig":  # fmt: skip
        """The configuration of a user's options (None: not given): no decode keeps the package's own
        (fitted on validation data), and a temperature or k alone adjusts it."""
        tweaks = {k: v for k, v in (("temperature", temperature), ("top_k", top_k)) if v is not None}
        if decode is not None:
            dec = DecodeConfig(method=decode, **tweaks)
        else:
            dec = dataclasses.replace(package_decode, **tweaks) if tweaks else None
        return cls(decode=dec, upsample=UpsampleConfig(upsample) if upsample else UpsampleConfig(), uncertainty=uncertainty,
                   **({"size": size} if size else {}))  # fmt: skip

    @classmethod
    def from_settings(cls, s: dict) -> "ColorizeConfig":
        """The configuration a manifest's settings record (the inverse of `settings`)."""
        fields = {f.name for f in dataclasses.fields(DecodeConfig)} - {"method"}
        decode = DecodeConfig(method=s["decode"], **{k: v for k, v in s.items() if k in fields})
        up = UpsampleConfig(s["upsample"], **({"radius": s["guide_radius"], "eps": s["guide_eps"]} if s["upsample"] == "guided" else {}))
        return cls(decode=decode, upsample=up, size=s["size"])

    def settings(self) -> dict:
        """What manifests and provenance record (after `resolved`)."""
        up = {"upsample": self.upsample.method} | (
            {"guide_radius": self.upsample.radius, "guide_eps": self.upsample.eps} if self.upsample.method == "guided" else {}
        )
        return {**(self.decode or DecodeConfig()).settings(), **up, "size": self.size}
