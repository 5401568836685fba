"""Builds the default model's training corpus from real photographs shipped in packages.

Usage: python infra/corpus/build_corpus.py --out DIR [--debs DIR]

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
from PIL import Image

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


def measure(rgb: np.ndarray) -> tuple[float, int]:
    thumb = np.asarray(Image.fromarray(rgb).resize((128, 128)))
    rg = thumb[..., 0].astype(float) - thumb[..., 1]
    yb = 0.5 * (thumb[..., 0].astype(float) + thumb[..., 1]) - thumb[..., 2]
    colourful = float(np.sqrt(rg.var() + yb.var()) + 0.3 * np.hypot(rg.mean(), yb.mean()))
    distinct = len(np.unique(thumb.reshape(-1, 3) // 4, axis=0))
    return colourful, distinct


def split_of(subject: str) -> str:
    if subject in PEOPLE or subject.removeprefix("music_") in PEOPLE and int(hashlib.sha256(subject.encode()).hexdigest()[:2], 16) < 128:
        return "val"
    return "val" if int(hashlib.sha256(subject.encode()).hexdigest()[:8], 16) / 2**32 < VAL_FRACTION else "train"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--debs", type=Path, default=Path(".state/debs"))
    args = ap.parse_args()
    rows, dropped = [], []
    for split in ("train", "val"):
        (args.out / split).mkdir(parents=True, exist_ok=True)
    for c in debian_candidates(args.debs) + wheel_candidates():
        try:
            img = Image.open(io.BytesIO(c.data))
            img.load()
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
        out = Image.fromarray(rgb)
        out.thumbnail((1024, 1024), Image.LANCZOS)
        split = split_of(c.subject)
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
