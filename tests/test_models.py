import pytest
import torch
import torch.nn.functional as F

from colorize_core.models import (
    ARCHS,
    Colorizer,
    DiscriminatorConfig,
    ModelConfig,
    PatchDiscriminator,
    check_reference_checkpoint,
    parameter_count,
)

# The released ECCV16 checkpoint's layout, written out as data: block -> convolutions
# (index in the block, in, out, stride, dilation) and the index of its BatchNorm.
REFERENCE_BLOCKS = {
    "model1": ([(0, 1, 64, 1, 1), (2, 64, 64, 2, 1)], 4),
    "model2": ([(0, 64, 128, 1, 1), (2, 128, 128, 2, 1)], 4),
    "model3": ([(0, 128, 256, 1, 1), (2, 256, 256, 1, 1), (4, 256, 256, 2, 1)], 6),
    "model4": ([(0, 256, 512, 1, 1), (2, 512, 512, 1, 1), (4, 512, 512, 1, 1)], 6),
    "model5": ([(0, 512, 512, 1, 2), (2, 512, 512, 1, 2), (4, 512, 512, 1, 2)], 6),
    "model6": ([(0, 512, 512, 1, 2), (2, 512, 512, 1, 2), (4, 512, 512, 1, 2)], 6),
    "model7": ([(0, 512, 512, 1, 1), (2, 512, 512, 1, 1), (4, 512, 512, 1, 1)], 6),
}


def reference_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    rnd = lambda *shape, scale=0.05: torch.randn(*shape, generator=g) * scale  # noqa: E731
    sd = {}
    for name, (convs, bn) in REFERENCE_BLOCKS.items():
        for i, cin, cout, _, _ in convs:
            sd[f"{name}.{i}.weight"] = rnd(cout, cin, 3, 3)
            sd[f"{name}.{i}.bias"] = rnd(cout)
        c = convs[-1][2]
        sd[f"{name}.{bn}.weight"] = 1 + rnd(c)
        sd[f"{name}.{bn}.bias"] = rnd(c)
        sd[f"{name}.{bn}.running_mean"] = rnd(c)
        sd[f"{name}.{bn}.running_var"] = 1 + rnd(c).abs()
        sd[f"{name}.{bn}.num_batches_tracked"] = torch.tensor(1000)
    sd["model8.0.weight"], sd["model8.0.bias"] = rnd(512, 256, 4, 4), rnd(256)  # ConvTranspose2d: (in, out, k, k)
    for i in (2, 4):
        sd[f"model8.{i}.weight"], sd[f"model8.{i}.bias"] = rnd(256, 256, 3, 3), rnd(256)
    sd["model8.6.weight"], sd["model8.6.bias"] = rnd(313, 256, 1, 1, scale=0.5), rnd(313)
    sd["model_out.weight"] = rnd(2, 313, 1, 1, scale=0.5)
    return sd


def reference_forward(sd: dict, L: torch.Tensor) -> torch.Tensor:
    """The reference's forward in functional form: (L - 50) / 100 in, softmax expectation x 110 out."""
    x = (L - 50) / 100
    for name, (convs, bn) in REFERENCE_BLOCKS.items():
        for i, _, _, stride, dil in convs:
            x = F.relu(F.conv2d(x, sd[f"{name}.{i}.weight"], sd[f"{name}.{i}.bias"], stride=stride, padding=dil, dilation=dil))
        p = f"{name}.{bn}"
        x = F.batch_norm(x, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"], sd[f"{p}.bias"], training=False, eps=1e-5)
    x = F.relu(F.conv_transpose2d(x, sd["model8.0.weight"], sd["model8.0.bias"], stride=2, padding=1))
    for i in (2, 4):
        x = F.relu(F.conv2d(x, sd[f"model8.{i}.weight"], sd[f"model8.{i}.bias"], padding=1))
    x = F.conv2d(x, sd["model8.6.weight"], sd["model8.6.bias"])
    ab = F.conv2d(torch.softmax(x, 1), sd["model_out.weight"])
    return F.interpolate(ab, scale_factor=4, mode="bilinear", align_corners=False) * 110


@pytest.mark.parametrize("arch", list(ARCHS))
def test_forward_shapes(arch):
    model = Colorizer(ModelConfig(arch)).eval()
    logits = model(torch.rand(2, 1, 64, 96) * 100)
    assert logits.shape == (2, 313, 16, 24)
    assert torch.isfinite(logits).all()


def test_parameter_counts():
    assert 31e6 < parameter_count(Colorizer(ModelConfig("eccv16"))) < 33e6
    assert 7.5e6 < parameter_count(Colorizer(ModelConfig("medium"))) < 8.5e6
    assert 1.5e6 < parameter_count(Colorizer(ModelConfig("small"))) < 2.5e6


def test_discriminator_gives_patch_logits():
    d = PatchDiscriminator(DiscriminatorConfig(channels=16))
    out = d(torch.rand(2, 1, 64, 64) * 100, torch.randn(2, 2, 64, 64) * 30)
    assert out.shape[:2] == (2, 1) and out.shape[-1] > 1 and torch.isfinite(out).all()


def test_loads_the_reference_layout_and_matches_its_forward():
    sd = reference_state_dict()
    check_reference_checkpoint(sd)
    model = Colorizer(ModelConfig("eccv16"))
    model.load_state_dict(sd, strict=True)
    model.eval()
    L = torch.rand(1, 1, 64, 64) * 100
    with torch.no_grad():
        ours = model.reference_forward(L)
        ref = reference_forward(sd, L)
    assert ours.shape == (1, 2, 64, 64)
    assert torch.allclose(ours, ref, atol=1e-3), (ours - ref).abs().max()


def test_other_layouts_are_refused_with_the_key():
    sd = reference_state_dict()
    del sd["model3.2.bias"]
    with pytest.raises(ValueError, match="model3.2.bias"):
        check_reference_checkpoint(sd)
    sd = reference_state_dict()
    sd["model8.6.weight"] = torch.zeros(10, 256, 1, 1)
    with pytest.raises(ValueError, match="model8.6.weight"):
        check_reference_checkpoint(sd)
