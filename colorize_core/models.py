"""The colorization network of Zhang et al. (ECCV 2016), its small variants, and a PatchGAN.

`Colorizer` at width 1 is the reference ECCV16 model layer for layer: the state-dict keys
(`model1.0.weight` ... `model8.6.bias`, `model_out.weight`) and shapes of the released checkpoint,
so it loads as it is. Each block is 2-3 convolutions with ReLU, then BatchNorm; resolution falls by
stride-2 convolutions (blocks 1-3), blocks 5-6 are dilated, block 8 rises by a transposed
convolution and ends in the Q-way 1x1 classifier at 1/4 of the input size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .constants import AB_NORM, L_CENT, L_NORM
from .hint_refiner import HintRefiner

ARCHS = {
    # name: (width multiplier, middle blocks among 5-7)
    "eccv16": (1.0, 3),
    "medium": (0.5, 3),
    "small": (0.25, 3),
    "tiny": (0.125, 1),
}
BASE_CHANNELS = (64, 128, 256, 512, 512, 512, 512, 256)
IMPORTED = ("siggraph17",)  # published layouts that import for inference (colorize_core/siggraph17.py), not trained here


@dataclass(frozen=True)
class ModelConfig:
    arch: str = "small"  # eccv16 (reference, ~32 M parameters) | medium (~8 M) | small (~2 M) | tiny (tests)
    q: int = 313  # bins of the bin set the classifier predicts
    hint_input: bool = False  # also sees a curator's ab hints and their mask (Zhang et al. 2017's input)
    hint_refiner: bool = False  # carries a HintRefiner that corrects the hints' spread (hint_refiner.py)

    def __post_init__(self):
        if self.arch not in ARCHS and self.arch not in IMPORTED:
            raise ValueError(f"unknown architecture {self.arch!r}; choose one of {', '.join(ARCHS)}")


def _block(cin: int, cout: int, n: int, stride_last: int = 1, dilation: int = 1) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(n):
        stride = stride_last if i == n - 1 else 1
        layers += [nn.Conv2d(cin if i == 0 else cout, cout, 3, stride=stride, padding=dilation, dilation=dilation), nn.ReLU(True)]
    return nn.Sequential(*layers, nn.BatchNorm2d(cout))


class Colorizer(nn.Module):
    def __init__(self, cfg: ModelConfig, centres: torch.Tensor | None = None):
        super().__init__()
        self.cfg = cfg
        width, middle = ARCHS[cfg.arch]
        c = [max(8, int(round(ch * width))) for ch in BASE_CHANNELS]
        self.model1 = _block(4 if cfg.hint_input else 1, c[0], 2, stride_last=2)
        self.model2 = _block(c[0], c[1], 2, stride_last=2)
        self.model3 = _block(c[1], c[2], 3, stride_last=2)
        self.model4 = _block(c[2], c[3], 3)
        # blocks 5, 6 dilated, 7 plain; small variants may keep fewer of them
        middle_specs = [(c[4], 2), (c[5], 2), (c[6], 1)][:middle]
        cin = c[3]
        for i, (cout, dil) in enumerate(middle_specs):
            setattr(self, f"model{5 + i}", _block(cin, cout, 3, dilation=dil))
            cin = cout
        self.middle = [f"model{5 + i}" for i in range(middle)]
        self.model8 = nn.Sequential(
            nn.ConvTranspose2d(cin, c[7], kernel_size=4, stride=2, padding=1),
            nn.ReLU(True),
            nn.Conv2d(c[7], c[7], 3, padding=1),
            nn.ReLU(True),
            nn.Conv2d(c[7], c[7], 3, padding=1),
            nn.ReLU(True),
            nn.Conv2d(c[7], cfg.q, kernel_size=1),
        )
        # the reference's expectation layer: ab = model_out(softmax(logits)) * AB_NORM; frozen
        self.model_out = nn.Conv2d(cfg.q, 2, kernel_size=1, bias=False)
        self.model_out.weight.requires_grad_(False)
        # not in forward: run on the hints' spread where a curator gave hints (hint_refiner.honour_hints)
        self.hint_refiner = HintRefiner() if cfg.hint_refiner else None
        if centres is not None:
            self.set_centres(centres)

    def set_centres(self, centres: torch.Tensor) -> None:
        with torch.no_grad():
            self.model_out.weight.copy_(torch.as_tensor(centres, dtype=torch.float32).T[:, :, None, None] / AB_NORM)

    @property
    def centres(self) -> torch.Tensor:
        return self.model_out.weight[:, :, 0, 0].T * AB_NORM  # (Q, 2)

    def forward(self, L: torch.Tensor, hints: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 1, H, W) L in [0, 100] -> (B, Q, H/4, W/4) logits over the bins. A model with hint input
        also takes `hints` (B, 3, H, W): the hints' ab and their mask (1 where a hint is), none when None;
        no hint is all zeros, so a model grown from one without hint input starts where it was."""
        x = (L - L_CENT) / L_NORM
        if self.cfg.hint_input:
            if hints is None:
                hints = torch.zeros((L.shape[0], 3, *L.shape[2:]), dtype=L.dtype, device=L.device)
            x = torch.cat([x, hints[:, :2] / AB_NORM, hints[:, 2:]], dim=1)  # the released SIGGRAPH17's normalisation
        x = self.model4(self.model3(self.model2(self.model1(x))))
        for name in self.middle:
            x = getattr(self, name)(x)
        return self.model8(x)

    def reference_forward(self, L: torch.Tensor) -> torch.Tensor:
        """The reference implementation's output: (B, 2, H, W) ab, softmax expectation upsampled 4x."""
        ab = self.model_out(torch.softmax(self(L), dim=1))
        return nn.functional.interpolate(ab, scale_factor=4, mode="bilinear") * AB_NORM


@dataclass(frozen=True)
class DiscriminatorConfig:
    channels: int = 64  # first layer's filters (pix2pix's ndf)
    layers: int = 3  # stride-2 layers: the receptive field is a 70 x 70 patch at 3


class PatchDiscriminator(nn.Module):
    """pix2pix's PatchGAN over (L, ab): one real/fake logit per overlapping patch."""

    def __init__(self, cfg: DiscriminatorConfig = DiscriminatorConfig()):
        super().__init__()
        ch = cfg.channels
        layers: list[nn.Module] = [nn.Conv2d(3, ch, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, cfg.layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < cfg.layers else 1
            layers += [nn.Conv2d(ch * prev, ch * mult, 4, stride=stride, padding=1), nn.BatchNorm2d(ch * mult), nn.LeakyReLU(0.2, True)]
        layers += [nn.Conv2d(ch * mult, 1, 4, stride=1, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        """L (B, 1, H, W) in [0, 100], ab (B, 2, H, W) -> (B, 1, h, w) patch logits."""
        return self.net(torch.cat([(L - L_CENT) / L_NORM, ab / AB_NORM], dim=1))


def with_hint_input(state: dict, seed: int = 0) -> dict:
    """A state dict of a model without hint input, for the same model with it: the first convolution
    gets weights for the hint channels at the scale of its L weights. With no hint those channels are
    all zero (ab 0, mask 0), so the new model computes exactly what the old one did; with hints it
    reacts from the first step (zero weights learnt to use them far more slowly: 500 steps left
    them at 1 % of the L weights' size and the hints without effect)."""
    w = state["model1.0.weight"]  # (C, 1, 3, 3)
    if w.shape[1] != 1:
        return state
    g = torch.Generator().manual_seed(seed)
    extra = torch.randn((w.shape[0], 3, *w.shape[2:]), generator=g, dtype=torch.float32).to(w.dtype) * w.std()
    return {**state, "model1.0.weight": torch.cat([w, extra], dim=1)}


def network_state(model: nn.Module) -> dict:
    """The network's own weights, to fine-tune from: a hint refiner stays behind, since it learnt the
    corrections of this network's colours (scripts/train_hint_refiner.py trains one for the new model)."""
    return {k: v for k, v in model.state_dict().items() if not k.startswith("hint_refiner.")}


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def check_reference_checkpoint(state: dict) -> None:
    """Raises ValueError naming the first key that is missing, unexpected or of another shape than
    the released ECCV16 checkpoint's."""
    check_layout(state, Colorizer(ModelConfig("eccv16")).state_dict(), "an ECCV16")


def check_layout(state: dict, expected: dict, layout: str) -> None:
    """ValueError naming the first key of `state` missing from, extra to, or shaped otherwise than `expected`."""
    for key, ref in expected.items():
        if key not in state:
            raise ValueError(f"not {layout} checkpoint: key {key!r} is missing")
        got = tuple(getattr(state[key], "shape", ()))
        if got != tuple(ref.shape):
            raise ValueError(f"not {layout} checkpoint: {key!r} has shape {got}, expected {tuple(ref.shape)}")
    extra = [k for k in state if k not in expected]
    if extra:
        raise ValueError(f"not {layout} checkpoint: unexpected key {extra[0]!r}")
