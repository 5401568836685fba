"""Colorizing one archival image at full resolution, in bounded memory.

The network sees the image at the working size; the predicted ab is upsampled to the original
size strip by strip and joined with the ORIGINAL full-resolution L, so the archive's detail is
never altered: only chroma is added. Colours that fall outside sRGB are brought in by reducing
their chroma, never by changing L.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import torch
from PIL import Image

from .color import gray_to_l, linear_to_srgb, rgb_to_lab
from .decoding import DecodeConfig, decode, entropy
from .imageio import DecodedImage
from .inference import autocast


@dataclass(frozen=True)
class RestoreConfig:
    method: str = "annealed-mean"  # annealed-mean | argmax | top-k | mean
    temperature: float = 0.38
    top_k: int = 5
    size: int = 256  # the network's working size
    strip_rows: int = 64  # full-resolution rows joined per step (bounds memory, stays in cache)
    uncertainty: bool = False  # also write the entropy of the predicted distribution as a grey map
    uncertainty_max_side: int = 2048  # the map is a guide, not an archival master

    @property
    def decode(self) -> DecodeConfig:
        return DecodeConfig(method=self.method, temperature=self.temperature, top_k=self.top_k)

    def settings(self) -> dict:
        return {"decode": self.method, "temperature": self.temperature, "top_k": self.top_k, "size": self.size}


def network_input(img: DecodedImage, size: int) -> np.ndarray:
    """(size, size) L for the network: the image resized (aspect ignored, as the reference does)."""
    px = img.pixels if img.is_gray else img.rgb8()
    if px.dtype == np.uint16:
        small = np.asarray(Image.fromarray(px).resize((size, size), Image.BILINEAR, reducing_gap=2.0))
        return gray_to_l(small.astype(np.uint16))
    small = np.asarray(Image.fromarray(px).resize((size, size), Image.BILINEAR, reducing_gap=2.0))
    return gray_to_l(small) if small.ndim == 2 else rgb_to_lab(small)[..., 0]


def bilinear_matrix(out_size: int, in_size: int) -> torch.Tensor:
    """(out, in) weights of bilinear resampling, equal to F.interpolate(align_corners=False)."""
    src = ((torch.arange(out_size, dtype=torch.float64) + 0.5) * (in_size / out_size) - 0.5).clamp(min=0)
    i0 = src.floor().long().clamp(max=in_size - 1)
    i1 = (i0 + 1).clamp(max=in_size - 1)
    w1 = (src - i0).clamp(0, 1)
    m = torch.zeros(out_size, in_size, dtype=torch.float64)
    m[torch.arange(out_size), i0] += 1 - w1
    m[torch.arange(out_size), i1] += w1
    return m.float()


def _finv(f: torch.Tensor) -> torch.Tensor:
    from . import constants as C

    return torch.where(f > C.LAB_INV_THRESHOLD, f * f * f, (f - C.LAB_OFFSET) / C.LAB_KAPPA_SLOPE)


def _lab_to_srgb_in_gamut(L: torch.Tensor, ab: torch.Tensor, iters: int = 6) -> torch.Tensor:
    """L (n,), ab (2, n) -> (n, 3) sRGB in [0, 1] with L kept exactly: colours outside sRGB have
    their chroma scaled down (bisection on the few pixels concerned) instead of RGB clipped."""
    from .color import _RGB_FROM_XYZ

    m = _RGB_FROM_XYZ  # normalised XYZ -> linear RGB, (3, 3)
    fy = (L + 16.0) / 116.0
    y = _finv(fy)  # (n,) Y does not depend on the chroma

    def linear(scale_a: torch.Tensor, scale_b: torch.Tensor) -> torch.Tensor:
        x, z = _finv(fy_sel + scale_a / 500.0), _finv(fy_sel - scale_b / 200.0)
        return torch.stack([m[i, 0] * x + m[i, 1] * y_sel + m[i, 2] * z for i in range(3)], -1)  # (k, 3)

    fy_sel, y_sel = fy, y
    rgb = linear(ab[0], ab[1])  # (n, 3)
    out = ((rgb < -1e-4) | (rgb > 1 + 1e-4)).any(-1)
    if out.any():
        idx = out.nonzero()[:, 0]
        fy_sel, y_sel = fy[idx], y[idx]
        a, b = ab[0, idx], ab[1, idx]
        lo, hi = torch.zeros_like(a), torch.ones_like(a)
        for _ in range(iters):
            mid = (lo + hi) / 2
            t = linear(a * mid, b * mid)
            ok = ((t >= -1e-4) & (t <= 1 + 1e-4)).all(-1)
            lo, hi = torch.where(ok, mid, lo), torch.where(ok, hi, mid)
        rgb[idx] = linear(a * lo, b * lo)
    return linear_to_srgb(rgb.clamp_(0.0, 1.0))


@torch.no_grad()
def predict_small(
    model: torch.nn.Module, L_small: torch.Tensor, centres: torch.Tensor, cfg: RestoreConfig, bf16: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 1, S, S) -> ab (B, 2, S/4, S/4) at the network's output resolution and entropy (B, S/4, S/4)."""
    with autocast(L_small.device, bf16):
        logits = model(L_small).float()
    return decode(logits, centres, cfg.decode), entropy(logits)


def _l_strip(img: DecodedImage, r0: int, r1: int) -> np.ndarray:
    px = img.pixels[r0:r1]
    if img.is_gray:
        return gray_to_l(px)
    return rgb_to_lab(px if img.bit_depth == 8 else px.astype(np.float32) / 65535.0)[..., 0]


def join_full_resolution(img: DecodedImage, ab_small: torch.Tensor, strip_rows: int = 64) -> np.ndarray:
    """The original's L + low-resolution ab (2, h, w) -> (H, W, 3) sRGB of the original's depth.

    Works strip by strip: L is computed from the original pixels of each strip and never held for
    the whole image, so memory is the input and output arrays plus one strip."""
    H, W = img.size
    mx = bilinear_matrix(W, ab_small.shape[2])  # (W, w)
    my = bilinear_matrix(H, ab_small.shape[1])  # (H, h)
    cols = torch.einsum("chw,Xw->chX", ab_small.float(), mx)  # (2, h, W)
    dtype, scale = (np.uint16, 65535.0) if img.bit_depth == 16 else (np.uint8, 255.0)
    out = np.empty((H, W, 3), dtype)
    for r in range(0, H, strip_rows):
        L = torch.from_numpy(_l_strip(img, r, r + strip_rows))  # (rows, W)
        ab = torch.einsum("Yh,chX->cYX", my[r : r + strip_rows], cols)  # (2, rows, W)
        rgb = _lab_to_srgb_in_gamut(L.reshape(-1), ab.reshape(2, -1))  # (rows * W, 3) in [0, 1]
        out[r : r + strip_rows] = (rgb * scale).round_().numpy().astype(dtype).reshape(L.shape[0], W, 3)
    return out


def uncertainty_map(ent: torch.Tensor, q: int, size: tuple[int, int], max_side: int) -> bytes:
    """Entropy (h, w) -> grey PNG, white where the model was unsure (entropy / log Q)."""
    H, W = size
    s = min(1.0, max_side / max(H, W))
    img = Image.fromarray((ent / np.log(q)).clamp(0, 1).mul(255).round().byte().numpy())
    buf = io.BytesIO()
    img.resize((max(1, round(W * s)), max(1, round(H * s))), Image.BILINEAR).save(buf, "PNG")
    return buf.getvalue()


def provenance(model_name: str, model_version: str, cfg: RestoreConfig, when: datetime | None = None) -> dict:
    when = when or datetime.now(timezone.utc)
    return {
        "colorized": "automatically",
        "note": "Colours are an estimate made by a machine-learning model, not a record of the original colours.",
        "model": model_name,
        "model_version": model_version,
        **cfg.settings(),
        "date": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def provenance_text(p: dict) -> str:
    return (
        f"Automatically colorized by model {p['model']} version {p['model_version']} "
        f"(decode {p['decode']}, T={p['temperature']}, size {p['size']}) on {p['date']}. {p['note']}"
    )


def xmp_packet(p: dict) -> bytes:
    fields = "".join(f"<colorize:{k}>{_xml(str(v))}</colorize:{k}>" for k, v in p.items())
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:colorize="https://colorize-archive.invalid/ns/1.0/">'
        f'<dc:description><rdf:Alt><rdf:li xml:lang="x-default">{_xml(provenance_text(p))}</rdf:li></rdf:Alt></dc:description>'
        f"{fields}</rdf:Description></rdf:RDF></x:xmpmeta>"
        '<?xpacket end="w"?>'
    ).encode("utf-8")


def _xml(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _png16(rgb: np.ndarray, alpha: np.ndarray | None, texts: dict[str, str]) -> bytes:
    """A 16-bit RGB(A) PNG (Pillow writes 16 bits for grey only), with iTXt provenance chunks."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    px = rgb if alpha is None else np.concatenate([rgb, alpha[..., None]], -1)
    h, w, c = px.shape
    raw = np.zeros((h, 1 + w * c * 2), np.uint8)  # filter byte 0 per row
    raw[:, 1:] = px.astype(">u2").view(np.uint8).reshape(h, -1)
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 6 if alpha is not None else 2, 0, 0, 0)
    itxt = b"".join(chunk(b"iTXt", k.encode() + b"\0\0\0\0\0" + v.encode("utf-8")) for k, v in texts.items())
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + itxt + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)) + chunk(b"IEND", b"")


def output_format(src_format: str) -> tuple[str, str | None]:
    """(format to write, new extension or None to keep the source's)."""
    if src_format in ("JPEG", "MPO"):
        return "JPEG", None
    if src_format == "PNG":
        return "PNG", None
    if src_format == "TIFF":
        return "TIFF", None
    return "PNG", ".png"  # WebP, BMP, GIF, ... become lossless PNG


def encode_output(rgb: np.ndarray, img: DecodedImage, prov: dict) -> bytes:
    """The colour image in the source's format, with provenance, and the source's ICC and EXIF where
    they still apply (a grey ICC profile does not describe an RGB image and is dropped)."""
    fmt, _ = output_format(img.format)
    text = provenance_text(prov)
    icc = img.icc_profile if not img.is_gray else None
    buf = io.BytesIO()
    if fmt == "TIFF":
        import tifffile

        extratags = [(700, "B", len(xmp := xmp_packet(prov)), xmp, True)]
        if icc:
            extratags.append((34675, "B", len(icc), icc, True))
        data = rgb if img.alpha is None else np.concatenate([rgb, img.alpha.astype(rgb.dtype)[..., None]], -1)
        tifffile.imwrite(buf, data, photometric="rgb", description=text, extratags=extratags, compression="zlib", metadata=None)
        return buf.getvalue()
    if fmt == "PNG" and rgb.dtype == np.uint16:
        return _png16(rgb, img.alpha, {"Description": text, "Software": "colorize-archive", "colorize:provenance": json.dumps(prov)})
    pil = Image.fromarray(rgb)
    exif = Image.Exif()
    if img.exif:
        exif.load(img.exif)
    exif[0x010E] = text  # ImageDescription
    exif[0x0131] = "colorize-archive"  # Software
    if fmt == "PNG":
        from PIL.PngImagePlugin import PngInfo

        if img.alpha is not None:
            pil.putalpha(Image.fromarray(img.alpha if img.alpha.dtype == np.uint8 else (img.alpha // 257).astype(np.uint8)))
        info = PngInfo()
        info.add_itxt("Description", text)
        info.add_itxt("Software", "colorize-archive")
        info.add_itxt("colorize:provenance", json.dumps(prov))
        info.add_itxt("XML:com.adobe.xmp", xmp_packet(prov).decode("utf-8"))
        pil.save(buf, "PNG", pnginfo=info, icc_profile=icc, exif=exif.tobytes())
    else:
        pil.save(buf, "JPEG", quality=95, icc_profile=icc, exif=exif.tobytes(), xmp=xmp_packet(prov))
    return buf.getvalue()


def colorize_array(pkg, gray: np.ndarray, cfg: RestoreConfig = RestoreConfig()) -> np.ndarray:
    """A grey (H, W) uint8/uint16 array -> (H, W, 3) colour array of the same depth (the pyfunc's path)."""
    img = DecodedImage(pixels=np.asarray(gray), alpha=None, format="PNG", mode="L", icc_profile=None, exif=None)
    L_small = torch.from_numpy(network_input(img, cfg.size))[None, None]
    ab, _ = predict_small(pkg.model, L_small, pkg.model.centres, cfg, bf16=False)
    return join_full_resolution(img, ab[0], cfg.strip_rows)
