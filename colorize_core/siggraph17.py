"""The published network of Zhang, Zhu, Isola et al., "Real-Time User-Guided Image Colorization with
Learned Deep Priors" (SIGGRAPH 2017), layer for layer as the reference release's `siggraph17` model:
its state-dict keys and shapes, so a released checkpoint loads as it is, and its forward.

It sees L, the hints' ab and their mask (4 channels, the reference's own normalisation: (L - 50) / 100,
ab / 110, the mask as it is), goes down to 1/8 by striding and back up with shortcuts from the way
down (conv3 -> conv8, conv2 -> conv9, conv1 -> conv10), and regresses ab at full resolution (tanh x
110). Its classification head (529 bins) is kept for the checkpoint but is not part of the output.
Imported for colorizing with hints; the project trains its own architectures, not this one.
"""

from __future__ import annotations

import torch
from torch import nn

from .constants import AB_NORM, L_CENT, L_NORM
from .models import check_layout

CLASSES = 529  # the reference's classification head: a 23 x 23 grid over ab


def _block(channels: list[int], dilation: int = 1, first_relu: bool = False) -> nn.Sequential:
    """Convolutions 3 x 3 with ReLU, then BatchNorm (a ReLU first for the up-path blocks)."""
    layers: list[nn.Module] = [nn.ReLU(True)] if first_relu else []
    for cin, cout in zip(channels[:-1], channels[1:]):
        layers += [nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation), nn.ReLU(True)]
    return nn.Sequential(*layers, nn.BatchNorm2d(channels[-1]))


class Siggraph17(nn.Module):
    regression = True  # the output is ab itself, not a distribution over bins

    def __init__(self, cfg=None, centres: torch.Tensor | None = None):
        super().__init__()
        self.cfg = cfg
        self.model1 = _block([4, 64, 64])
        self.model2 = _block([64, 128, 128])
        self.model3 = _block([128, 256, 256, 256])
        self.model4 = _block([256, 512, 512, 512])
        self.model5 = _block([512, 512, 512, 512], dilation=2)
        self.model6 = _block([512, 512, 512, 512], dilation=2)
        self.model7 = _block([512, 512, 512, 512])
        self.model8up = nn.Sequential(nn.ConvTranspose2d(512, 256, 4, stride=2, padding=1))
        self.model3short8 = nn.Sequential(nn.Conv2d(256, 256, 3, padding=1))
        self.model8 = _block([256, 256, 256], first_relu=True)
        self.model9up = nn.Sequential(nn.ConvTranspose2d(256, 128, 4, stride=2, padding=1))
        self.model2short9 = nn.Sequential(nn.Conv2d(128, 128, 3, padding=1))
        self.model9 = _block([128, 128], first_relu=True)
        self.model10up = nn.Sequential(nn.ConvTranspose2d(128, 128, 4, stride=2, padding=1))
        self.model1short10 = nn.Sequential(nn.Conv2d(64, 128, 3, padding=1))
        self.model10 = nn.Sequential(nn.ReLU(True), nn.Conv2d(128, 128, 3, padding=1), nn.LeakyReLU(0.2))
        self.model_class = nn.Sequential(nn.Conv2d(256, CLASSES, 1))
        self.model_out = nn.Sequential(nn.Conv2d(128, 2, 1), nn.Tanh())
        self.register_buffer("_centres", torch.zeros((0, 2)), persistent=False)
        if centres is not None:
            self.set_centres(centres)

    def set_centres(self, centres: torch.Tensor) -> None:
        """The package's bin centres (the colour tool's suggestions and decodes have none to use here)."""
        self._centres = torch.as_tensor(centres, dtype=torch.float32)

    @property
    def centres(self) -> torch.Tensor:
        return self._centres

    def forward(self, L: torch.Tensor, hints: torch.Tensor | None = None) -> torch.Tensor:
        """L (B, 1, H, W) in [0, 100], hints (B, 3, H, W) (ab, mask; none when None) -> ab (B, 2, H, W)."""
        if hints is None:
            hints = torch.zeros((L.shape[0], 3, *L.shape[2:]), dtype=L.dtype, device=L.device)
        conv1_2 = self.model1(torch.cat([(L - L_CENT) / L_NORM, hints[:, :2] / AB_NORM, hints[:, 2:]], dim=1))
        conv2_2 = self.model2(conv1_2[:, :, ::2, ::2])
        conv3_3 = self.model3(conv2_2[:, :, ::2, ::2])
        conv4_3 = self.model4(conv3_3[:, :, ::2, ::2])
        conv7_3 = self.model7(self.model6(self.model5(conv4_3)))
        conv8_3 = self.model8(self.model8up(conv7_3) + self.model3short8(conv3_3))
        conv9_3 = self.model9(self.model9up(conv8_3) + self.model2short9(conv2_2))
        conv10_2 = self.model10(self.model10up(conv9_3) + self.model1short10(conv1_2))
        return self.model_out(conv10_2) * AB_NORM


def is_siggraph17(state: dict) -> bool:
    return "model1short10.0.weight" in state


def check_siggraph17_checkpoint(state: dict) -> None:
    """Raises ValueError naming the first key that is missing, unexpected or of another shape than
    the released SIGGRAPH17 checkpoint's."""
    check_layout(state, Siggraph17().state_dict(), "a SIGGRAPH17")
