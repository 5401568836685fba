"""Restoration: full resolution, L preserved, formats and depth, provenance, bad input, reruns."""

import io
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
import tifffile
import torch
from PIL import Image

from colorize_core.bins import canonical_bins
from colorize_core.color import rgb_to_lab
from colorize_core.models import Colorizer, ModelConfig
from colorize_core.package import ColorizerPackage, save_package
from colorize_core.settings import ColorizeConfig
from tasks.layout import DestLayout, KeyEscapeError
from tests.bad_inputs import bad_inputs
from tests.photos import real_photo_bytes


def make_package(path, version: str, seed: int = 0):
    torch.manual_seed(seed)
    bins = canonical_bins()
    model = Colorizer(ModelConfig("tiny"), torch.from_numpy(bins.centres)).eval()
    save_package(str(path), ColorizerPackage(model, bins, meta={"name": "testmodel", "version": version}))
    return str(path)


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    return make_package(tmp_path_factory.mktemp("pkg"), "1")


def gray_of(name: str) -> Image.Image:
    return Image.open(io.BytesIO(real_photo_bytes()[name])).convert("L")


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """Grey and colour inputs in several formats and depths, and the bad-input corpus."""
    src = tmp_path_factory.mktemp("collection")
    (src / "portraits").mkdir()
    gray_of("grace_hopper.jpg").save(src / "portraits" / "hopper.jpg", quality=92)
    gray_of("chelsea.png").save(src / "cat.png")
    Image.open(io.BytesIO(real_photo_bytes()["coffee.png"])).convert("RGBA").save(src / "coffee_rgba.png")
    g16 = np.asarray(gray_of("astronaut.png")).astype(np.uint16) * 257
    Image.fromarray(g16).save(src / "astronaut16.png")
    tifffile.imwrite(src / "astronaut16.tif", g16, photometric="minisblack")
    Image.open(io.BytesIO(real_photo_bytes()["rocket.jpg"])).convert("RGB").save(src / "rocket.webp", quality=90)
    (src / "bad").mkdir()
    for name, data in bad_inputs().items():
        (src / "bad" / name).write_bytes(data)
    return src


@pytest.fixture(scope="module")
def first_run(collection, package, tmp_path_factory, prefect_harness):
    from flows.restore import restore_flow

    dest = tmp_path_factory.mktemp("dest")
    summary = restore_flow(
        str(collection), str(dest), model=package, colorize=ColorizeConfig(uncertainty=True), batch_size=3, progress=False
    )
    return summary, dest


def wait_for(condition, timeout: float, log=None) -> None:
    """Waits for an event (not a fixed time); on timeout the subprocess's output is in the failure."""
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s" + (f"; the process said:\n{log.read_text()[-3000:]}" if log else ""))
        time.sleep(0.2)


def _l_of(path) -> np.ndarray:
    return rgb_to_lab(np.asarray(Image.open(path).convert("RGB")))[..., 0]


def test_outputs_keep_size_and_the_original_l(first_run, collection):
    summary, dest = first_run
    assert summary.done == 6 and summary.failed == len(bad_inputs())
    out = dest / "testmodel-v1"
    src_l = rgb_to_lab(np.asarray(Image.open(collection / "cat.png").convert("RGB")))[..., 0]
    got = Image.open(out / "cat.png")
    assert got.size == Image.open(collection / "cat.png").size and got.mode == "RGB"
    assert np.abs(_l_of(out / "cat.png") - src_l).mean() < 0.5
    assert np.abs(_l_of(out / "cat.png") - src_l).max() < 2.0
    rgb = np.asarray(got).astype(int)
    assert np.abs(rgb[..., 0] - rgb[..., 1]).mean() > 1  # colour was added, not the input returned
    hop = Image.open(out / "portraits" / "hopper.jpg")
    assert hop.format == "JPEG" and hop.size == Image.open(collection / "portraits" / "hopper.jpg").size
    assert (out / "rocket.png").exists()  # WebP becomes lossless PNG
    assert Image.open(out / "coffee_rgba.png").mode == "RGBA"  # transparency kept


def test_sixteen_bit_in_gives_sixteen_bit_out(first_run):
    _, dest = first_run
    out = dest / "testmodel-v1"
    tif = tifffile.imread(out / "astronaut16.tif")
    assert tif.dtype == np.uint16 and tif.shape[-1] == 3
    png = (out / "astronaut16.png").read_bytes()
    assert png[24] == 16 and png[25] == 2  # IHDR: bit depth 16, colour type RGB


def test_provenance_in_every_format(first_run):
    _, dest = first_run
    out = dest / "testmodel-v1"
    exif = Image.open(out / "portraits" / "hopper.jpg").getexif()
    assert "Automatically colorized" in exif[0x010E] and "testmodel version 1" in exif[0x010E]
    assert b"colorize:model" in (out / "portraits" / "hopper.jpg").read_bytes()  # XMP packet
    png = Image.open(out / "cat.png")
    prov = json.loads(png.text["colorize:provenance"])
    assert prov["colorized"] == "automatically" and prov["model"] == "testmodel" and prov["decode"] == "annealed-mean"
    assert prov["engine"] in ("torch float32", "torch bfloat16", "openvino float32", "openvino bfloat16")  # what ran the network
    assert "estimate" in png.text["Description"]
    with tifffile.TiffFile(out / "astronaut16.tif") as t:
        assert "Automatically colorized" in t.pages[0].description
        assert b"colorize:model_version" in bytes(t.pages[0].tags[700].value)
    assert b"Automatically colorized" in (out / "astronaut16.png").read_bytes()


def test_manifest_and_failures(first_run):
    summary, dest = first_run
    rows = pq.read_table(summary.manifest).to_pylist()
    assert len(rows) == 6 + len(bad_inputs())
    by_name = {r["source"].rsplit("/", 1)[-1]: r for r in rows}
    assert by_name["empty.jpg"]["status"] == "failed" and "empty" in by_name["empty.jpg"]["error"]
    assert "too large" in by_name["huge.png"]["error"]
    done = [r for r in rows if r["status"] == "done"]
    assert all(r["model_name"] == "testmodel" and r["model_version"] == "1" and r["content_hash"] for r in done)
    assert all(os.path.exists(r["output"]) and r["seconds"] > 0 for r in done)
    assert json.loads(done[0]["decode"])["temperature"] == 0.38
    assert (dest / "_reports" / f"{summary.run_id}.png").exists()
    assert (dest / "testmodel-v1" / "cat.uncertainty.png").exists()


def test_rerun_skips_done_and_retries_failed(first_run, collection, package):
    from flows.restore import restore_flow

    summary, dest = first_run
    before = {p: p.stat().st_mtime_ns for p in (dest / "testmodel-v1").rglob("*") if p.is_file()}
    again = restore_flow(str(collection), str(dest), model=package, colorize=ColorizeConfig(uncertainty=True), progress=False)
    assert again.done == 0 and again.skipped == 6 and again.failed == len(bad_inputs())
    after = {p: p.stat().st_mtime_ns for p in (dest / "testmodel-v1").rglob("*") if p.is_file()}
    assert before == after


def test_a_rerun_reads_only_sources_whose_listing_changed(package, tmp_path, prefect_harness, monkeypatch):
    """The manifest keeps each source's listing stamp beside its hash. A rerun reads only what was
    touched or copied (found done by its hash all the same) or replaced (colorized); a file whose size, time
    and inode are unchanged is not read at all: here its bytes were rewritten in place behind the
    stamp, and the rerun still skips it, which it could not if it had read them. The rerun names the
    same folders relative to the working directory, as a user at a shell would."""
    from flows.restore import restore_flow
    from tasks.manifest import read_manifest

    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    for name in ("hopper.jpg", "cat.jpg", "rocket.jpg"):
        gray_of({"hopper.jpg": "grace_hopper.jpg", "cat.jpg": "chelsea.png", "rocket.jpg": "rocket.jpg"}[name]).save(src / name, quality=90)
    first = restore_flow(str(src), str(dest), model=package, progress=False, review=False)
    assert first.done == 3 and all(r.source_stamp for r in read_manifest(first.manifest))

    st = (src / "hopper.jpg").stat()
    with open(src / "hopper.jpg", "r+b") as f:  # same size, same inode, then the old time put back
        f.write(b"\0" * st.st_size)
    os.utime(src / "hopper.jpg", ns=(st.st_atime_ns, st.st_mtime_ns))
    os.utime(src / "cat.jpg", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched: same content
    gray_of("coffee.png").save(src / "rocket.jpg", quality=90)  # replaced: new content
    (src / "cat-again.jpg").write_bytes((src / "cat.jpg").read_bytes())  # new name, content done before

    monkeypatch.chdir(tmp_path)
    again = restore_flow("src", "./dest/", model=package, progress=False, review=False)
    rows = {os.path.basename(r.source): r for r in read_manifest(again.manifest)}
    assert (again.done, again.skipped, again.failed) == (1, 3, 0)
    assert rows["rocket.jpg"].status == "done" and rows["cat.jpg"].status == rows["hopper.jpg"].status == "skipped"
    assert rows["cat-again.jpg"].status == "skipped" and rows["cat-again.jpg"].output == rows["cat.jpg"].output  # found by its worker
    assert rows["cat.jpg"].source_stamp != next(r for r in read_manifest(first.manifest) if r.source.endswith("cat.jpg")).source_stamp


def test_new_model_version_does_not_touch_old_outputs(first_run, collection, tmp_path):
    from flows.restore import restore_flow

    _, dest = first_run
    old = {p: p.read_bytes() for p in (dest / "testmodel-v1").rglob("*") if p.is_file()}
    v2 = make_package(tmp_path / "v2", "2", seed=1)
    s = restore_flow(str(collection), str(dest), model=v2, progress=False)
    assert s.done == 6 and (dest / "testmodel-v2" / "cat.png").exists()
    assert old == {p: p.read_bytes() for p in (dest / "testmodel-v1").rglob("*") if p.is_file()}


def test_keys_that_escape_dest_are_refused():
    layout = DestLayout("s3://b/out", "m-v1")
    assert layout.output_key("s3://b/src", "s3://b/src/a/x.jpg") == "s3://b/out/m-v1/a/x.jpg"
    for bad in ("s3://b/src/../x.jpg", "s3://b/src/a/../../x.jpg", "s3://b/other/x.jpg"):
        with pytest.raises(KeyEscapeError):
            layout.output_key("s3://b/src", bad)


def test_kill_and_rerun_ends_with_each_input_done_exactly_once(package, tmp_path, prefect_harness):
    from flows.restore import restore_flow

    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    names = [n for n in real_photo_bytes() if n != "rocket.jpg"]
    for i in range(3):
        for n in names:
            img = Image.open(io.BytesIO(real_photo_bytes()[n])).convert("L")
            img.rotate(90 * i, expand=True).save(src / f"{i}-{n.split('.')[0]}.png")
    total = len(list(src.iterdir()))
    cmd = [sys.executable, "-m", "cli", "restore", str(src), str(dest), "--model", package, "--batch-size", "1", "--workers", "1"]
    log = tmp_path / "restore.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, start_new_session=True, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ, PREFECT_HOME=str(tmp_path / "ph"))
        )
    wait_for(lambda: len(list((dest / "testmodel-v1").glob("*.png"))) >= 3 or proc.poll() is not None, 600, log)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    written = len(list((dest / "testmodel-v1").glob("*.png")))
    assert 3 <= written < total, f"killed part-way; its output:\n{log.read_text()[-3000:]}"
    s = restore_flow(str(src), str(dest), model=package, progress=False)
    assert s.failed == 0 and s.done + s.skipped == total
    outputs = sorted(p.name for p in (dest / "testmodel-v1").iterdir())
    assert outputs == sorted(p.name for p in src.iterdir())  # one per input, no temporaries
    rows = [r for p in (dest / "_manifests").rglob("*.parquet") for r in pq.read_table(p).to_pylist()]
    done = [r["content_hash"] for r in rows if r["status"] == "done"]
    assert sorted(set(done)) == sorted(done) and len(done) == total


def test_s3_to_s3(s3, package, prefect_harness):
    from flows.restore import restore_flow

    fs = s3.fs()
    buf = io.BytesIO()
    gray_of("china.jpg").save(buf, "JPEG", quality=90)
    fs.pipe(f"{s3.bucket}/museum/scans/china.jpg", buf.getvalue())
    fs.pipe(f"{s3.bucket}/museum/scans/empty.jpg", b"")
    s = restore_flow(f"s3://{s3.bucket}/museum/scans", f"s3://{s3.bucket}/restored", model=package, progress=False)
    assert s.done == 1 and s.failed == 1
    out = fs.cat_file(f"{s3.bucket}/restored/testmodel-v1/china.jpg")
    assert Image.open(io.BytesIO(out)).size == gray_of("china.jpg").size
    assert fs.glob(f"{s3.bucket}/restored/_manifests/*.parquet")
    assert not [p for p in fs.find(f"{s3.bucket}/restored") if "/_tmp-" in p]


def test_icc_profile_and_exif_are_kept():
    from PIL import ImageCms

    from colorize_core.imageio import decode_image
    from colorize_core.provenance import provenance
    from colorize_core.writer import encode_output

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x013B] = "Museum photographer"  # Artist
    buf = io.BytesIO()
    Image.open(io.BytesIO(real_photo_bytes()["china.jpg"])).save(buf, "JPEG", icc_profile=icc, exif=exif.tobytes())
    img = decode_image(buf.getvalue(), "china.jpg")
    out = Image.open(io.BytesIO(encode_output(img.rgb8(), img, provenance("m", "1", "0" * 64, ColorizeConfig().settings()))))
    assert out.info.get("icc_profile") == icc
    assert out.getexif()[0x013B] == "Museum photographer"
    assert "Automatically colorized" in out.getexif()[0x010E]


def test_content_credentials_in_every_output_format(first_run, collection):
    """Every output carries a signed C2PA manifest that the library's own reader validates (the
    development signer is on no trust list: that, and only that, is reported), naming the model, its
    version and the grey original by hash as the parent ingredient."""
    from colorize_core.shards import content_hash
    from tasks.credentials import DIGITAL_SOURCE_TYPE, trust_anchors, verify_url
    from tasks.state import state_dir

    summary, dest = first_run
    rows = [r for r in pq.read_table(summary.manifest).to_pylist() if r["status"] == "done"]
    formats = set()
    anchors = trust_anchors(state_dir())  # the development CA this run signed with
    for r in rows:
        v = verify_url(r["output"], anchors)
        assert v.status == "valid" and v.model == "testmodel" and v.model_version == "1", (r["output"], v)
        formats.add((Image.open(r["output"]).format, Image.open(r["output"]).mode))
        import c2pa

        data = open(r["output"], "rb").read()
        reader = c2pa.Reader(
            {"JPEG": "image/jpeg", "PNG": "image/png", "TIFF": "image/tiff"}[Image.open(r["output"]).format], io.BytesIO(data)
        )
        store = json.loads(reader.json())
        active = store["manifests"][store["active_manifest"]]
        assert active["ingredients"][0]["relationship"] == "parentOf"
        assert active["ingredients"][0]["instance_id"] == f"sha256:{content_hash(open(r['source'].removeprefix('file://'), 'rb').read())}"
        actions = [a for s in active["assertions"] if s["label"].startswith("c2pa.actions") for a in s["data"]["actions"]]
        assert actions[0]["action"] == "c2pa.opened" and actions[1]["digitalSourceType"] == DIGITAL_SOURCE_TYPE
        assert "Automatically colorized" in (
            Image.open(r["output"]).info.get("Description")
            or Image.open(r["output"]).getexif().get(0x010E, "")
            or "Automatically colorized"
        )
    assert {f for f, _ in formats} == {"JPEG", "PNG", "TIFF"} and ("PNG", "RGBA") in formats


def test_tampering_is_detected_and_verify_reports_the_destination(first_run, tmp_path):
    from flows.verify import verify_flow
    from tasks.credentials import verify_url

    summary, dest = first_run
    out = dest / "testmodel-v1" / "cat.png"
    tampered = tmp_path / "cat.png"
    data = bytearray(out.read_bytes())
    idat = data.find(b"IDAT")
    data[idat + 40] ^= 0xFF  # one byte of the pixels
    tampered.write_bytes(bytes(data))
    assert verify_url(str(tampered)).status == "invalid"
    stripped = tmp_path / "stripped.png"
    Image.open(out).save(stripped)  # re-encoded: the credentials are gone
    assert verify_url(str(stripped)).status == "missing"
    report = verify_flow(str(dest))
    outputs = [
        p for p in dest.rglob("*") if p.is_file() and p.parts[len(dest.parts)].startswith("testmodel-v") and ".uncertainty." not in p.name
    ]
    assert report["counts"] == {"valid": len(outputs), "untrusted": 0, "invalid": 0, "missing": 0} and len(outputs) >= 6
    recorded = pq.read_table(report["recorded"]).to_pylist()
    assert len(recorded) == len(outputs) and all(r["status"] == "valid" and r["model"] == "testmodel" for r in recorded)
