"""Curators' hints: one format, errors that name the key and the field, and colours that spread along
the photograph's edges from the network's own colours."""

import json

import numpy as np
import pytest

from colorize_core.color import rgb_to_lab
from colorize_core.hint_propagation import propagate_hints
from colorize_core.hints import Hint, HintsError, hints_document, hints_id, parse_hints, rasterise


def doc(images) -> str:
    return json.dumps({"version": 1, "images": images})


def test_a_hint_takes_its_chroma_from_the_colour_and_ab_wins_over_it():
    hints = parse_hints(doc({"a/b.jpg": [{"x": 0.41, "y": 0.27, "radius": 0.01, "color": "#b03a2e"},
                                         {"x": 0.5, "y": 0.5, "radius": 0.02, "color": "#000000", "ab": [12.5, -40]}]}))  # fmt: skip
    first, second = hints["a/b.jpg"]
    lab = rgb_to_lab(np.array([[[0xB0, 0x3A, 0x2E]]], np.uint8))[0, 0]
    assert first.ab == pytest.approx((lab[1], lab[2]), abs=1e-4) and first.ab[0] > 30, "a red: positive a*"
    assert second.ab == (12.5, -40.0)
    [again] = parse_hints(hints_document(hints)).values()  # written by a program (as ab), read back
    assert [(h.x, h.y, h.radius) for h in again] == [(0.41, 0.27, 0.01), (0.5, 0.5, 0.02)]
    assert again[0].ab == pytest.approx(first.ab, abs=1e-3) and again[1].ab == second.ab
    assert hints_id(hints["a/b.jpg"]) == hints_id(hints["a/b.jpg"][::-1]) != hints_id(hints["a/b.jpg"][:1])


@pytest.mark.parametrize(
    "images, message",
    [
        ({"x.jpg": [{"x": 1.2, "y": 0.5, "radius": 0.01, "color": "#ffffff"}]}, r"images\['x.jpg'\]\[0\].x: 1.2 is outside"),
        ({"x.jpg": [{"x": 0.2, "y": 0.5, "radius": 0.01, "colour": "#ffffff"}]}, r"images\['x.jpg'\]\[0\]: unknown field 'colour'"),
        ({"x.jpg": [{"x": 0.2, "y": 0.5, "radius": 0.01}]}, r"images\['x.jpg'\]\[0\]: needs a 'color'"),
        ({"x.jpg": [{"x": 0.2, "y": 0.5, "radius": 0.01, "color": "red"}]}, r"images\['x.jpg'\]\[0\].color: expected an sRGB hex"),
        ({"x.jpg": [{"x": 0.2, "y": 0.5, "radius": 0, "ab": [1, 2]}]}, r"\[0\].radius: 0 is outside \(0, 0.5\]"),
        ({"x.jpg": [{"x": 0.2, "y": 0.5, "radius": 0.1, "ab": [1, 200]}]}, r"\[0\].ab\[1\]: 200 is outside"),
        ({"../x.jpg": []}, r"image key '../x.jpg' must be a path relative to SOURCE"),
        ({"x.jpg": {"x": 0.2}}, r"images\['x.jpg'\]: expected a list of hints"),
    ],
)
def test_anything_else_in_a_hints_file_is_an_error_naming_the_key_and_the_field(images, message):
    with pytest.raises(HintsError, match=message):
        parse_hints(doc(images), "hints.json")


def test_a_hints_file_of_another_version_or_not_json_is_refused():
    with pytest.raises(HintsError, match="'version' must be 1"):
        parse_hints(json.dumps({"version": 2, "images": {}}))
    with pytest.raises(HintsError, match="not JSON"):
        parse_hints(b"{not json")


def test_hints_are_discs_on_the_working_grid_at_least_one_cell():
    ab, mask = rasterise((Hint(0.25, 0.5, 0.1, (30.0, -10.0)), Hint(0.9, 0.1, 1e-6, (5.0, 5.0))), (64, 64), (200, 400))
    assert ab.shape == (2, 64, 64) and mask.sum() > 1
    ys, xs = np.nonzero(mask & (ab[0] == 30))
    # radius 0.1 of the long side (40 px of 400): 6.4 cells across the width, 12.8 down the height
    assert xs.max() - xs.min() in range(11, 15) and ys.max() - ys.min() in range(23, 28)
    assert mask[6, 57] and ab[:, 6, 57].tolist() == [5.0, 5.0], "a tiny hint still marks its cell"


def test_hints_spread_along_edges_and_the_network_keeps_the_rest():
    h = w = 96
    L = np.full((h, w), 40.0, np.float32)
    L[:, 48:] = 85.0  # a strong edge down the middle
    prior = np.stack([np.full((h, w), -5.0, np.float32), np.full((h, w), 8.0, np.float32)])
    hint_ab, mask = rasterise((Hint(0.2, 0.5, 0.02, (45.0, 30.0)),), (h, w), (h, w))
    ab = propagate_hints(L, prior, hint_ab, mask)
    assert np.allclose(ab[:, mask], np.array([[45.0], [30.0]])), "a hint's colour where it was put"
    near, across = ab[:, 48, 30], ab[:, 48, 52]
    assert near[0] > across[0] + 5, "the edge stops the colour"
    assert np.abs(ab[:, :, 90] - prior[:, :, 90]).max() < 2, "far away, across the edge: the network's colours"
    assert np.array_equal(propagate_hints(L, prior, hint_ab, np.zeros_like(mask)), prior), "no hint: the prior"


def test_a_hint_replaces_the_networks_blotches_where_it_reaches():
    """The hint's colour, not the network's colour shifted by the hint's correction: blotches of the
    network's colours under a hint's region fade with its reach (spreading the correction kept them)."""
    h = w = 64
    L = np.full((h, w), 50.0, np.float32)  # one flat region
    blotches = np.where((np.indices((h, w)) // 4).sum(0) % 2 == 0, 20.0, -20.0).astype(np.float32)  # (h, w)
    prior = np.stack([blotches, -blotches])
    hint_ab, mask = rasterise((Hint(0.5, 0.5, 0.03, (10.0, 10.0)),), (h, w), (h, w))
    ab = propagate_hints(L, prior, hint_ab, mask)
    near = (slice(26, 38), slice(40, 46))  # beside the hint, in its region
    assert ab[(0, *near)].std() < 0.5 * prior[(0, *near)].std()
    assert np.abs(ab[(0, *near)].mean() - 10.0) < 5


def test_a_batch_with_hints_writes_beside_the_automatic_outputs_and_reruns_only_changed_hints(tmp_path, prefect_harness):
    import pyarrow.parquet as pq
    from PIL import Image

    from flows.restore import restore_flow
    from tests.test_restore import gray_of, make_package

    src, dest = tmp_path / "src", tmp_path / "dest"
    (src / "a").mkdir(parents=True)
    gray_of("chelsea.png").save(src / "a" / "cat.png")
    gray_of("coffee.png").save(src / "cup.png")
    pkg = make_package(tmp_path / "pkg", "1")
    red = {"version": 1, "images": {"a/cat.png": [{"x": 0.3, "y": 0.4, "radius": 0.05, "color": "#d02020"}]}}
    (tmp_path / "hints.json").write_text(json.dumps(red))

    def run(hints):
        return restore_flow(str(src), str(dest), model=pkg, batch_size=2, progress=False, review=False, hints=hints)

    auto = run(None)
    hinted = run(str(tmp_path / "hints.json"))
    assert (auto.done, hinted.done, hinted.skipped) == (2, 1, 1), "only the hinted item is made again"
    outputs = dest / "testmodel-v1"
    [made] = outputs.glob("a/cat.hints-*.png")
    assert (outputs / "a" / "cat.png").exists(), "the automatic output stays"
    a, b = (np.asarray(Image.open(p).convert("RGB")).astype(int) for p in (outputs / "a" / "cat.png", made))
    H, W = a.shape[:2]
    near = (slice(int(0.4 * H) - 3, int(0.4 * H) + 3), slice(int(0.3 * W) - 3, int(0.3 * W) + 3))
    lab = rgb_to_lab(b[near].astype(np.uint8))
    assert lab[..., 1].mean() > 20 and np.abs(a[near] - b[near]).mean() > 10, "red where the curator said"
    row = next(r for r in pq.read_table(hinted.manifest).to_pylist() if r["status"] == "done")
    assert row["hints"] and row["output"].endswith(f".hints-{row['hints']}.png")
    assert '"hints": 1' in Image.open(made).text["colorize:provenance"]
    from tasks.credentials import verify_url

    assert "c2pa.edited" in json.dumps(__import__("c2pa").Reader("image/png", open(made, "rb")).json())
    assert verify_url(str(made)).status in ("valid", "untrusted")
    again = run(str(tmp_path / "hints.json"))
    assert (again.done, again.skipped) == (0, 2), "unchanged hints: nothing to do"
    red["images"]["a/cat.png"][0]["color"] = "#2040d0"
    changed = run(red)
    assert (changed.done, changed.skipped) == (1, 1) and len(list(outputs.glob("a/cat.hints-*.png"))) == 2, "changed hints: a new output beside"


def test_a_model_grown_to_take_hints_computes_what_it_did_without_them():
    import torch

    from colorize_core.models import Colorizer, ModelConfig, with_hint_input

    torch.manual_seed(0)
    plain = Colorizer(ModelConfig("tiny")).eval()
    hinted = Colorizer(ModelConfig("tiny", hint_input=True)).eval()
    hinted.load_state_dict(with_hint_input(plain.state_dict()))
    L = torch.rand(2, 1, 64, 64) * 100
    assert torch.equal(plain(L), hinted(L)), "at zero hints the same logits"
    assert torch.equal(plain(L), hinted(L, torch.zeros(2, 3, 64, 64))), "no hint is all zeros"
    hints = torch.zeros(2, 3, 64, 64)
    hints[:, :2, 20:24, 20:24], hints[:, 2, 20:24, 20:24] = 40.0, 1.0
    assert not torch.equal(plain(L), hinted(L, hints)), "and a hint is felt from the start"
    assert hinted.model1[0].weight.shape[1] == 4


def test_simulated_hints_are_patch_means_of_the_truth_and_reproducible():
    import torch

    from colorize_core.hint_simulation import HintSimulation, simulate_hints

    ab = (torch.rand(64, 2, 48, 48) - 0.5) * 100
    cfg = HintSimulation(enabled=True)
    hints = simulate_hints(ab, cfg, torch.Generator().manual_seed(3))
    assert torch.equal(hints, simulate_hints(ab, cfg, torch.Generator().manual_seed(3))), "the same draw again"
    mask = hints[:, 2] > 0
    none = (~mask.flatten(1).any(1)).float().mean()
    assert 0.1 < none < 0.45, "about a quarter of the images without hints"
    assert mask.flatten(1).sum(1).float().max() > 9, "some images get several"
    b = int(mask.flatten(1).any(1).nonzero()[0])
    ys, xs = mask[b].nonzero(as_tuple=True)
    y, x = int(ys[0]), int(xs[0])  # the corner of a patch: its value is a mean of the truth nearby
    assert hints[b, :2, y, x].abs().max() <= ab[b].abs().max() and hints[b, 0, y, x] != 0


def test_the_hint_evaluation_sets_the_model_against_the_classic_method_alone(photo_shards):
    """The classic optimisation of the table is Levin et al. alone (from gray, no network): with no
    hints it is gray, and its hints colour it; the model's row with no hints is its automatic output."""
    import glob

    from colorize_core.data import load_split, open_local
    from colorize_core.evaluation import evaluate, evaluate_hints, predicted, samples
    from colorize_core.package import load_package
    from colorize_core.settings import ColorizeConfig
    from tasks.model_resolve import BUNDLED_MODEL_DIR

    pkg = load_package(BUNDLED_MODEL_DIR)
    items = list(samples(load_split(sorted(glob.glob(str(photo_shards / "*.parquet"))), open_local, "val")))
    by = evaluate_hints(pkg, items, (0, 20))
    assert {"model with hints", "classic optimisation", "gray"} <= set(by[0])
    assert pkg.model.cfg.hint_refiner, "the bundled model carries a hint refiner"
    assert by[0]["model, spread unrefined"] == by[0]["model with hints"], "no hint, nothing to refine"
    assert by[20]["model with hints"]["psnr"] > by[20]["model, spread unrefined"]["psnr"] + 0.2, "the refiner's correction helps"
    assert by[0]["classic optimisation"] == by[0]["gray"]
    assert by[20]["classic optimisation"]["auc_rebalanced"] > by[0]["gray"]["auc_rebalanced"] + 0.01
    automatic = evaluate(pkg, predicted(pkg, items), {"own": ColorizeConfig().resolved(pkg.decode)}, baselines=False)["model/own"]
    assert by[0]["model with hints"]["psnr"] == pytest.approx(automatic["psnr"], abs=1e-3)


def test_training_with_simulated_hints_resumes_exactly(photo_shards, tmp_path):
    import glob

    import torch

    from colorize_core.bins import BinSet
    from colorize_core.data import AugmentConfig, open_local
    from colorize_core.hint_simulation import HintSimulation
    from colorize_core.models import ModelConfig
    from colorize_core.train import Hooks, TrainConfig, train

    bins = BinSet.load(str(photo_shards / "bins.npz"))
    urls = sorted(glob.glob(str(photo_shards / "part-*.parquet")))
    cfg = TrainConfig(steps=4, batch_size=3, checkpoint_every=2, val_every=1000, loader_workers=0,
                      augment=AugmentConfig(crop=96, shuffle_buffer=4), hints=HintSimulation(enabled=True))  # fmt: skip

    def run(folder, resume=None):
        return train(bins, urls, open_local, ModelConfig("tiny"), cfg, str(tmp_path / folder), resume, Hooks())

    whole = run("a")
    assert whole.model.cfg.hint_input and whole.model.model1[0].weight.shape[1] == 4
    resumed = run("b", str(tmp_path / "a" / "step-0000002.pt"))
    for k, v in whole.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


def test_the_colour_tools_preview_is_the_batchs_own_preview():
    """What the review page's server redraws is, pixel for pixel, the preview a batch run makes."""
    from colorize_core.colorize import ColorizedBatch
    from colorize_core.imageio import decode_image
    from colorize_core.package import load_package
    from colorize_core.settings import ColorizeConfig
    from tasks.model_resolve import BUNDLED_MODEL_DIR
    from tasks.restore_worker import PREVIEW
    from tests.photos import real_photo_bytes

    pkg = load_package(BUNDLED_MODEL_DIR)
    img = decode_image(real_photo_bytes()["chelsea.png"], "chelsea.png")
    hints = (Hint(0.3, 0.4, 0.02, (40.0, -30.0)),)
    cfg = ColorizeConfig().resolved(pkg.decode)
    batch_preview = ColorizedBatch(pkg, [img], cfg, hints=[hints]).colorized(0, PREVIEW).previews[1]
    tool_preview = ColorizedBatch(pkg, [img], cfg, hints=[hints]).preview(0, PREVIEW)
    assert np.array_equal(np.asarray(batch_preview), np.asarray(tool_preview))


def test_an_untrained_hint_refiner_leaves_the_spread_and_no_hint_leaves_the_network():
    import torch

    from colorize_core.hint_refiner import HintRefiner, honour_hints

    h = w = 64
    L = np.full((h, w), 40.0, np.float32)
    L[:, 32:] = 85.0
    prior = np.stack([np.full((h, w), -5.0, np.float32), np.full((h, w), 8.0, np.float32)])
    hint_ab, mask = rasterise((Hint(0.2, 0.5, 0.03, (45.0, 30.0)),), (h, w), (h, w))
    torch.manual_seed(0)
    refiner = HintRefiner().eval()
    assert np.allclose(honour_hints(L, prior, hint_ab, mask, 1, refiner), propagate_hints(L, prior, hint_ab, mask), atol=1e-5)
    with torch.no_grad():
        refiner.out.bias.copy_(torch.tensor([0.0, 0.2]))  # a trained one: b* up by 22 everywhere
    assert np.allclose(honour_hints(L, prior, hint_ab, mask, 1, refiner) - propagate_hints(L, prior, hint_ab, mask), [[[0.0]], [[22.0]]], atol=1e-3)
    assert np.array_equal(honour_hints(L, prior, hint_ab, np.zeros_like(mask), 0, refiner), prior), "no hint: the network's colours"


def test_a_packaged_hint_refiner_colours_hinted_outputs_only(tmp_path):
    """The refiner travels in the package's weights, and restore's path (ColorizedBatch) runs it on
    hinted images; an image without hints is the network's own, bit for bit."""
    import torch

    from colorize_core.bins import canonical_bins
    from colorize_core.colorize import ColorizedBatch
    from colorize_core.imageio import decode_image
    from colorize_core.models import Colorizer, ModelConfig
    from colorize_core.package import ColorizerPackage, load_package, save_package
    from colorize_core.settings import ColorizeConfig
    from tests.photos import real_photo_bytes

    torch.manual_seed(0)
    bins = canonical_bins()
    plain = Colorizer(ModelConfig("tiny"), torch.from_numpy(bins.centres)).eval()
    refined = Colorizer(ModelConfig("tiny", hint_refiner=True), torch.from_numpy(bins.centres)).eval()
    refined.load_state_dict(plain.state_dict(), strict=False)
    with torch.no_grad():
        refined.hint_refiner.out.bias.copy_(torch.tensor([0.3, 0.0]))  # a* up by 33
    save_package(str(tmp_path / "plain"), ColorizerPackage(plain, bins))
    save_package(str(tmp_path / "refined"), ColorizerPackage(refined, bins))
    a, b = load_package(str(tmp_path / "plain")), load_package(str(tmp_path / "refined"))
    assert b.model.cfg.hint_refiner and torch.equal(b.model.hint_refiner.out.bias, torch.tensor([0.3, 0.0]))
    img = decode_image(real_photo_bytes()["chelsea.png"], "chelsea.png")
    cfg = ColorizeConfig().resolved(a.decode)
    hints = (Hint(0.3, 0.4, 0.02, (10.0, -30.0)),)
    diff = (ColorizedBatch(b, [img], cfg, hints=[hints]).hinted_ab(0, img.size) - ColorizedBatch(a, [img], cfg, hints=[hints]).hinted_ab(0, img.size))
    assert torch.allclose(diff[0], torch.tensor(33.0), atol=1e-3) and torch.allclose(diff[1], torch.tensor(0.0), atol=1e-3)
    assert torch.equal(ColorizedBatch(b, [img], cfg).hinted_ab(0, img.size), ColorizedBatch(a, [img], cfg).hinted_ab(0, img.size))


def test_the_hint_refiner_learns_and_resumes_exactly():
    import copy

    import torch

    from colorize_core.hint_refiner import CHANNELS, HintRefiner, RefinerTrainConfig, train_refiner

    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, CHANNELS, 16, 16, generator=g)
    base = torch.zeros(64, 2, 16, 16)
    truth = 40 * (x[:, 1:3] - 0.5)  # the correction depends on the input
    cfg = RefinerTrainConfig(steps=60, batch=8)

    def fresh():
        torch.manual_seed(1)
        net = HintRefiner(width=8)
        return net, torch.optim.Adam(net.parameters(), cfg.lr)

    net, opt = fresh()
    losses = [loss for _, loss in train_refiner(net, x, base, truth, cfg, opt)]
    assert np.mean(losses[-10:]) < 0.7 * np.mean(losses[:10])
    half, opt2 = fresh()
    for step, _ in train_refiner(half, x, base, truth, cfg, opt2):
        if step == 25:
            break
    saved = copy.deepcopy({"net": half.state_dict(), "opt": opt2.state_dict()})
    again, opt3 = fresh()
    again.load_state_dict(saved["net"])
    opt3.load_state_dict(saved["opt"])
    for _ in train_refiner(again, x, base, truth, cfg, opt3, start=25):
        pass
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), again.parameters())), "resumed: the same weights"
