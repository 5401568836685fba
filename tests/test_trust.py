"""Nothing lost, nothing forged: what a rerun, a hostile name, a strange file or a second run at
once can do to outputs, pages and the state (the faults found by trying the system as an attacker
and as a curator). Each test failed on the code before the fix."""

import errno
import io
import json
import os
import subprocess
import sys
import time
import tracemalloc
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from colorize_core.colorize import join_full_resolution
from colorize_core.imageio import DecodedImage, ImageReadError, decode_image
from colorize_core.settings import ColorizeConfig, DecodeConfig, UpsampleConfig
from colorize_core.upsample import ChromaField
from tests.test_restore import gray_of, make_package

REPO = Path(__file__).resolve().parents[1]
COLORIZE = str(Path(sys.executable).parent / "colorize")


def _files(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def reruns(tmp_path_factory, prefect_harness):
    """A collection restored with the model's own settings, then again with another decode, then once
    more after a curator replaced one scan with a better one."""
    from flows.restore import restore_flow

    root = tmp_path_factory.mktemp("reruns")
    src, dest = root / "src", root / "dest"
    src.mkdir()
    for name in ("chelsea.png", "coffee.png"):
        gray_of(name).save(src / name)
    pkg = make_package(root / "pkg", "1")
    first = restore_flow(str(src), str(dest), model=pkg, batch_size=2, progress=False)
    before = _files(dest / "testmodel-v1")
    other = ColorizeConfig(decode=DecodeConfig(method="argmax"))
    second = restore_flow(str(src), str(dest), model=pkg, colorize=other, batch_size=2, progress=False)
    after_second = _files(dest / "testmodel-v1")
    gray_of("astronaut.png").resize((300, 300)).save(src / "chelsea.png")  # the same name, other content
    third = restore_flow(str(src), str(dest), model=pkg, batch_size=2, progress=False)
    return dest, first, second, third, before, after_second


def test_a_rerun_with_other_settings_writes_beside_the_first_and_replaces_nothing(reruns):
    dest, first, second, _, before, after_second = reruns
    assert first.done == 2 and second.done == 2, "other settings are other outputs: done again, not skipped"
    assert after_second == before, "the first run's outputs are untouched, byte for byte and in time"
    assert Path(second.outputs).parent == dest and Path(second.outputs).name.startswith("testmodel-v1-s")
    assert sorted(p.name for p in Path(second.outputs).glob("*.png") if "uncertainty" not in p.name) == ["chelsea.png", "coffee.png"]
    # every manifest describes exactly the files it links, with the settings that made them
    for summary, decode in ((first, None), (second, "argmax")):
        folder = Path(summary.outputs).name
        coll = json.loads((dest / "_iiif" / folder / "manifest.json").read_text())
        settings = next(m["value"]["en"][0] for m in coll["metadata"] if m["label"]["en"][0] == "Settings")
        assert (f"decode {decode}" in settings) if decode else ("decode argmax" not in settings)
        links = [r["id"] for c in coll["items"] for r in c["rendering"]]
        assert links and all(f"/{folder}/" in link for link in links)


def test_a_replaced_source_gets_a_new_output_and_the_old_one_stays(reruns):
    dest, _, _, third, before, _ = reruns
    assert third.done == 1 and third.skipped == 1
    outputs = Path(third.outputs)
    assert (outputs / "chelsea.png").read_bytes() == before["chelsea.png"][0], "the master of the old scan is kept"
    [new] = [p for p in outputs.glob("chelsea~*.png")]
    assert new.read_bytes() != before["chelsea.png"][0] and Image.open(new).size == (300, 300)


def test_storage_errors_that_cannot_heal_are_not_retried():
    from tasks.storage import retrying

    calls = []

    def too_long():
        calls.append(1)
        raise OSError(errno.ENAMETOOLONG, "File name too long")

    t0 = time.perf_counter()
    with pytest.raises(OSError):
        retrying(too_long, "x")
    assert len(calls) == 1 and time.perf_counter() - t0 < 0.5


def test_the_temporary_name_never_makes_a_valid_name_too_long(tmp_path):
    from tasks.storage import atomic_write

    name = "n" * 250 + ".png"  # 254 characters: the file system allows 255
    atomic_write(str(tmp_path / name), b"x")
    assert (tmp_path / name).read_bytes() == b"x" and [p.name for p in tmp_path.iterdir()] == [name]
    with pytest.raises(FileExistsError):
        atomic_write(str(tmp_path / name), b"y", replace=False)
    assert (tmp_path / name).read_bytes() == b"x" and len(list(tmp_path.iterdir())) == 1, "nothing left behind"


def _strip_png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (width, height), 128).save(buf, "PNG", optimize=True)
    return buf.getvalue()


def test_an_extreme_aspect_ratio_is_refused_before_decoding():
    data = _strip_png(10_000_000, 1)  # 10 MP in a few KB: decoding it would be harmless, working on it would not
    assert len(data) < 100_000
    t0 = time.perf_counter()
    with pytest.raises(ImageReadError, match="too elongated: 10000000 x 1"):
        decode_image(data, "strip.png")
    assert time.perf_counter() - t0 < 0.5
    assert decode_image(_strip_png(3000, 40), "panorama.png").size == (40, 3000), "a panorama of 75:1 is fine"


def test_the_joins_working_memory_is_bounded_whatever_the_width():
    """The join works strip by strip; a strip of a very wide image is fewer rows, not more memory."""
    H, W = 64, 400_000
    grey = DecodedImage(pixels=np.full((H, W), 120, np.uint8), alpha=None, format="PNG", mode="L", icc_profile=None, exif=None)
    field = ChromaField(torch.full((256, 256), 50.0), torch.zeros((2, 64, 64)), (H, W), UpsampleConfig("bilinear"))
    join_full_resolution(grey, field)  # compiled kernels warm
    tracemalloc.start()
    out = join_full_resolution(grey, field)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert out.shape == (H, W, 3)
    assert peak - out.nbytes < 150e6, f"{(peak - out.nbytes) / 1e6:.0f} MB besides the output (64-row strips took 1,120 MB)"


def test_iiif_ids_and_page_links_are_percent_encoded(tmp_path):
    from tasks.iiif import public
    from tasks.review import relative

    dest = tmp_path / "dest"
    base = "https://archive.example/colorized"
    for key in ("%2e%2e/%2e%2e/x.png", "a#b?c\\d.png", "50%.png"):
        url = public(str(dest / "colorizer-v1" / key), str(dest), base)
        assert url.startswith(base + "/colorizer-v1/")
        resolved = urllib.parse.urljoin(base + "/", url)
        assert urllib.parse.urlsplit(resolved).path.startswith("/colorized/colorizer-v1/"), "stays under DEST"
        assert "#" not in url and "?" not in url and "\\" not in url
        assert urllib.parse.unquote(url[len(base) + 1 :]) == f"colorizer-v1/{key}"
        link = relative(str(dest / "colorizer-v1" / key), str(dest / "_reports" / "run"))
        assert urllib.parse.unquote(link) == f"../../colorizer-v1/{key}" and "#" not in link and "?" not in link


def test_csv_cells_that_look_like_formulas_come_back_as_they_were():
    from tasks.decisions import parse_decisions

    csv = 'content_hash,source,name,decision\n"ab","\'=HYPERLINK(""x"")","\'@cmd","rejected"\n'
    [row] = parse_decisions(csv.encode(), "d.csv")
    assert row["source"] == '=HYPERLINK("x")' and row["name"] == "@cmd"


@pytest.fixture()
def cli_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_", "COLORIZE_"))}
    return env | {"COLORIZE_HOME": str(tmp_path / "state"), "PREFECT_HOME": str(tmp_path / "state" / "prefect"), "DO_NOT_TRACK": "true"}


def test_a_hostile_collection_ends_with_failed_items_and_nothing_leaked(tmp_path, cli_env):
    """Through the command line: a name near the file system's limit is colorized without delay; a
    link to a private file outside SOURCE and a 100,000,000 x 1 strip are failed items with their
    reasons; the exit status says "some items failed" (3), not a usage error (2)."""
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    long_name = "p" * 236 + ".png"  # its .uncertainty.png still fits in 255
    gray_of("chelsea.png").resize((64, 48)).save(src / long_name)
    secret = tmp_path / "private.png"
    gray_of("coffee.png").save(secret)
    secret.chmod(0o600)
    (src / "link.png").symlink_to(secret)
    (src / "strip.png").write_bytes(_strip_png(100_000_000, 1))
    (src / "inside").mkdir()
    (src / "inside" / "real.png").write_bytes(_strip_png(32, 32))
    (src / "alias.png").symlink_to(src / "inside" / "real.png")  # a link that stays inside SOURCE is fine
    pkg = make_package(tmp_path / "pkg", "1")
    t0 = time.time()
    p = subprocess.run([COLORIZE, "restore", str(src), str(dest), "--model", pkg, "--workers", "1", "--uncertainty"],
                       env=cli_env, capture_output=True, text=True, timeout=600)  # fmt: skip
    took = time.time() - t0
    assert p.returncode == 3, p.stdout + p.stderr
    assert "3 colorized, 0 already done, 2 failed" in p.stdout, p.stdout + p.stderr
    assert "link that leaves the source folder" in p.stderr and "too elongated" in p.stderr, p.stderr
    outputs = dest / "testmodel-v1"
    assert (outputs / long_name).exists() and not (outputs / "link.png").exists()
    assert not any("coffee" in str(f) for f in dest.rglob("*")), "nothing of the private file was published"
    assert took < 300, f"{took:.0f} s: no item may hold the batch in retries"


def test_an_unknown_model_version_or_folder_is_one_line_and_a_usage_error(tmp_path, cli_env):
    dest = tmp_path / "dest"
    dest.mkdir()
    for args in (
        ["image", str(REPO / "cli" / "samples" / "collection" / os.listdir(REPO / "cli" / "samples" / "collection")[0]), str(tmp_path / "o.png"),
         "--model", "models:/colorizer/7"],
        ["compare", str(dest), "--models", "colorizer-v1", "--models", "colorizer-v7"],
    ):  # fmt: skip
        p = subprocess.run([COLORIZE, *args], env=cli_env, capture_output=True, text=True, timeout=300)
        assert p.returncode == 2 and "Traceback" not in p.stdout + p.stderr, p.stdout + p.stderr
        errors = [line for line in p.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and ("colorizer/7" in errors[0] or "has no item done by colorizer-v" in errors[0]), p.stderr


def test_a_version_without_its_checksum_is_not_loaded_unless_the_user_says_so(tmp_path, mlflow_tmp, monkeypatch):
    from mlflow import MlflowClient

    from colorize_core.bins import canonical_bins
    from colorize_core.models import Colorizer, ModelConfig
    from colorize_core.package import ColorizerPackage
    from tasks.checks import ModelMismatch
    from tasks.model_resolve import PACKAGE_TAG, UNCHECKED_OPT_IN, resolve_model
    from tasks.registry import register_package

    monkeypatch.delenv(UNCHECKED_OPT_IN, raising=False)
    pkg = ColorizerPackage(Colorizer(ModelConfig("tiny"), torch.from_numpy(canonical_bins().centres)).eval(), canonical_bins())
    version = register_package(pkg, "untagged", "test")
    MlflowClient().delete_model_version_tag("untagged", version, PACKAGE_TAG)
    with pytest.raises(ModelMismatch, match=f"no {PACKAGE_TAG} tag"):
        resolve_model(f"models:/untagged/{version}")
    monkeypatch.setenv(UNCHECKED_OPT_IN, "1")
    assert resolve_model(f"models:/untagged/{version}").version == version


FIRST_RUN = """
import sys, time
from tasks.registry import resolve_model
while time.time() < float(sys.argv[1]):
    time.sleep(0.005)
ref = resolve_model()
print(ref.name, ref.version)
"""


def test_first_runs_started_together_set_up_the_state_once(tmp_path, cli_env):
    """Two scheduled runs on a new machine: one migrates the SQLite store and registers the bundled
    model, the other waits and finds it done (before: `duplicate column name: step`, or two versions)."""
    start = time.time() + 4  # all three past their imports, then at once
    procs = [
        subprocess.Popen([sys.executable, "-c", FIRST_RUN, str(start)], env=cli_env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]  # fmt: skip
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(err[-2000:] for _, err in outs)
    assert {out.strip().splitlines()[-1] for out, _ in outs} == {"colorizer 1"}, "one version, registered once"


def test_an_object_store_output_is_created_once_and_never_replaced(s3):
    """On S3 the create-only write is one conditional PUT (If-None-Match: *), honoured by SeaweedFS."""
    from tasks.storage import atomic_write, read_bytes

    url = f"s3://{s3.bucket}/create-only/master.png"
    atomic_write(url, b"first", replace=False)
    with pytest.raises(FileExistsError):
        atomic_write(url, b"second", replace=False)
    assert read_bytes(url) == b"first"
    atomic_write(url, b"third")  # bookkeeping (pages, manifests) may be rewritten
    assert read_bytes(url) == b"third"


def test_verify_answers_without_prefect(tmp_path, cli_env):
    """`colorize verify FILE` runs no flow: with the Prefect API set to a port where nothing listens,
    it still answers, and quickly."""
    from tasks.ports import free_port

    src = REPO / "cli" / "samples" / "collection" / sorted(os.listdir(REPO / "cli" / "samples" / "collection"))[0]
    env = cli_env | {"PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api"}
    t0 = time.time()
    p = subprocess.run([COLORIZE, "verify", str(src)], env=env, capture_output=True, text=True, timeout=120)
    took = time.time() - t0
    assert p.returncode == 1 and "missing" in p.stdout, p.stdout + p.stderr  # a grey source has no credentials
    assert "Traceback" not in p.stderr and took < 20, (took, p.stderr)
