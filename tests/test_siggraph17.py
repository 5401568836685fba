"""The published SIGGRAPH 2017 layout: a state dict with the reference release's keys and shapes
loads, our forward matches the reference's forward (written out functionally from its layer list,
random weights) with hints and without, and an imported checkpoint colorizes with hints."""

import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from colorize_core.siggraph17 import Siggraph17, check_siggraph17_checkpoint, is_siggraph17
from tests.test_cli import colorize, env  # noqa: F401 - env is a fixture

# the reference's blocks: (name, convolutions (cin, cout), dilation, a ReLU first), each ending in BatchNorm
BLOCKS = [
    ("model1", [(4, 64), (64, 64)], 1, False),
    ("model2", [(64, 128), (128, 128)], 1, False),
    ("model3", [(128, 256), (256, 256), (256, 256)], 1, False),
    ("model4", [(256, 512), (512, 512), (512, 512)], 1, False),
    ("model5", [(512, 512)] * 3, 2, False),
    ("model6", [(512, 512)] * 3, 2, False),
    ("model7", [(512, 512)] * 3, 1, False),
    ("model8", [(256, 256)] * 2, 1, True),
    ("model9", [(128, 128)], 1, True),
]


def reference_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights under the reference release's keys (BatchNorm statistics random too)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for name, convs, _, first_relu in BLOCKS:
        i = 1 if first_relu else 0
        for cin, cout in convs:
            sd[f"{name}.{i}.weight"] = torch.randn(cout, cin, 3, 3, generator=g) * (2 / (9 * cin)) ** 0.5
            sd[f"{name}.{i}.bias"] = torch.randn(cout, generator=g) * 0.01
            i += 2
        c = convs[-1][1]
        sd |= {f"{name}.{i}.weight": 1 + 0.1 * torch.randn(c, generator=g), f"{name}.{i}.bias": 0.1 * torch.randn(c, generator=g),
               f"{name}.{i}.running_mean": 0.1 * torch.randn(c, generator=g), f"{name}.{i}.running_var": 0.5 + torch.rand(c, generator=g),
               f"{name}.{i}.num_batches_tracked": torch.tensor(7)}  # fmt: skip
    for key, shape in [("model8up.0", (512, 256, 4, 4)), ("model9up.0", (256, 128, 4, 4)), ("model10up.0", (128, 128, 4, 4)),
                       ("model3short8.0", (256, 256, 3, 3)), ("model2short9.0", (128, 128, 3, 3)), ("model1short10.0", (128, 64, 3, 3)),
                       ("model10.1", (128, 128, 3, 3)), ("model_class.0", (529, 256, 1, 1)), ("model_out.0", (2, 128, 1, 1))]:  # fmt: skip
        fan_in = shape[1] * shape[2] * shape[3] if "up" not in key else shape[0] * 4
        sd[f"{key}.weight"] = torch.randn(*shape, generator=g) * (1 / fan_in) ** 0.5
        sd[f"{key}.bias"] = torch.randn(shape[1] if "up" in key else shape[0], generator=g) * 0.01
    return sd


def reference_forward(sd: dict, L: torch.Tensor, ab: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The reference's forward written out: (L - 50) / 100, ab / 110 and the mask in; strided
    subsampling down; transposed convolutions up plus the shortcuts; tanh x 110 out."""

    def block(name, x):
        convs, dil, first_relu = next((c, d, r) for n, c, d, r in BLOCKS if n == name)
        i = 1 if first_relu else 0
        if first_relu:
            x = F.relu(x)
        for _ in convs:
            x = F.relu(F.conv2d(x, sd[f"{name}.{i}.weight"], sd[f"{name}.{i}.bias"], padding=dil, dilation=dil))
            i += 2
        return F.batch_norm(x, sd[f"{name}.{i}.running_mean"], sd[f"{name}.{i}.running_var"], sd[f"{name}.{i}.weight"], sd[f"{name}.{i}.bias"])

    def up(key, x):
        return F.conv_transpose2d(x, sd[f"{key}.0.weight"], sd[f"{key}.0.bias"], stride=2, padding=1)

    def short(key, x):
        return F.conv2d(x, sd[f"{key}.0.weight"], sd[f"{key}.0.bias"], padding=1)

    c1 = block("model1", torch.cat([(L - 50) / 100, ab / 110, mask], 1))
    c2 = block("model2", c1[:, :, ::2, ::2])
    c3 = block("model3", c2[:, :, ::2, ::2])
    c7 = block("model7", block("model6", block("model5", block("model4", c3[:, :, ::2, ::2]))))
    c8 = block("model8", up("model8up", c7) + short("model3short8", c3))
    c9 = block("model9", up("model9up", c8) + short("model2short9", c2))
    c10 = F.leaky_relu(F.conv2d(F.relu(up("model10up", c9) + short("model1short10", c1)), sd["model10.1.weight"], sd["model10.1.bias"], padding=1), 0.2)
    return torch.tanh(F.conv2d(c10, sd["model_out.0.weight"], sd["model_out.0.bias"])) * 110


def test_the_published_layout_loads_and_matches_the_reference_forward_with_hints():
    sd = reference_state_dict()
    check_siggraph17_checkpoint(sd)
    assert is_siggraph17(sd)
    model = Siggraph17().eval()
    model.load_state_dict(sd)
    g = torch.Generator().manual_seed(1)
    L = torch.rand(2, 1, 64, 64, generator=g) * 100
    mask = (torch.rand(2, 1, 64, 64, generator=g) < 0.02).float()
    ab = (torch.rand(2, 2, 64, 64, generator=g) - 0.5) * 160 * mask
    with torch.no_grad():
        ours, ref = model(L, torch.cat([ab, mask], 1)), reference_forward(sd, L, ab, mask)
        plain = model(L)
    assert ours.shape == (2, 2, 64, 64) and (ours - ref).abs().max() < 1e-3
    assert (plain - reference_forward(sd, L, torch.zeros_like(ab), torch.zeros_like(mask))).abs().max() < 1e-3
    assert (ours - plain).abs().max() > 0.1, "the hints change the answer"


def test_a_checkpoint_of_another_layout_is_refused_naming_the_key():
    sd = reference_state_dict()
    sd["model4.0.weight"] = sd["model4.0.weight"][:, :128]
    with pytest.raises(ValueError, match="model4.0.weight"):
        check_siggraph17_checkpoint(sd)


def test_an_imported_siggraph17_colorizes_with_hints(tmp_path, mlflow_tmp, env):  # noqa: F811
    """Imported as a user does, from another folder as the first command on a new state: the model's
    files go under the state, never into ./mlruns of that folder."""
    from colorize_core.colorize import ColorizedBatch
    from colorize_core.hints import Hint
    from colorize_core.imageio import decode_image
    from colorize_core.settings import ColorizeConfig
    from tasks.registry import resolve_model
    from tests.photos import real_photo_bytes

    torch.save(reference_state_dict(), tmp_path / "siggraph17.pth")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env |= {"COLORIZE_HOME": str(mlflow_tmp), "MLFLOW_TRACKING_URI": os.environ["MLFLOW_TRACKING_URI"]}
    made = colorize("import-weights", tmp_path / "siggraph17.pth", "--name", "colorizer-s17", env=env, cwd=elsewhere)
    assert made.returncode == 0, made.stderr
    assert list(elsewhere.iterdir()) == [] and list((mlflow_tmp / "mlartifacts").rglob("MLmodel"))
    ref = resolve_model(made.stdout.split()[0])
    from colorize_core.package import load_package

    pkg = load_package(ref.directory)
    assert pkg.model.cfg.arch == "siggraph17" and pkg.model.cfg.hint_input
    img = decode_image(real_photo_bytes()["chelsea.png"], "chelsea.png")
    cfg = ColorizeConfig().resolved(pkg.decode)
    plain = ColorizedBatch(pkg, [img], cfg).colorized(0)
    hinted = ColorizedBatch(pkg, [img], cfg, hints=[(Hint(0.5, 0.5, 0.05, (60.0, 40.0)),)]).colorized(0)
    assert plain.rgb.shape[:2] == img.size
    assert np.abs(plain.rgb.astype(int) - hinted.rgb.astype(int)).mean() > 0, "hints reach the network"
    assert plain.doubt == 0.0, "a regressing network reports no doubt"
