"""The review page's colour tool, served: a small local HTTP server (127.0.0.1 only) that serves a
destination's pages and redraws an item's preview with a curator's hints, by the same model,
settings and path as the batch run that made the item (`ColorizedBatch`, the batch's own preview).
A page opened from elsewhere (a bucket, a folder) still places and exports hints; it says that
previews need this server (`colorize review serve DEST`).

    GET  /<path under DEST>        the pages, pictures and data files
    GET  /api/health               {"ok": true}: the page looks for it to switch previews on
    POST /api/preview              {"run", "key", "hints": [...]} -> the preview (JPEG, at most 1024 px)
    POST /api/suggest              {"run", "key", "x", "y"} -> {"colors": [hex, ...]}: the model's most
                                   likely colours at that point, with the photo's lightness there
"""

from __future__ import annotations

import json
import mimetypes
import posixpath
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

import numpy as np
import torch

from colorize_core.color import lab_to_rgb
from colorize_core.colorize import ColorizedBatch, network_input
from colorize_core.engines import Engine, run
from colorize_core.hints import HINTS_VERSION, parse_hints
from colorize_core.imageio import DecodedImage, decode_image
from colorize_core.package import load_package
from colorize_core.settings import ColorizeConfig
from colorize_core.writer import jpeg_bytes
from tasks.engine_choice import engine_for
from tasks.layout import DestLayout
from tasks.model_resolve import resolve_model
from tasks.restore_worker import PREVIEW
from tasks.review import RUN_INFO
from tasks.storage import join, read_bytes, retrying


@dataclass
class RunContext:
    pkg: object
    cfg: ColorizeConfig
    engine: Engine
    sources: dict[str, str]  # hints key (path under SOURCE) -> source URL


class ReviewService:
    """Runs' models and settings, loaded once each, and the last few decoded sources."""

    def __init__(self, dest: str, cached_images: int = 8):
        self.dest = dest
        self._runs: dict[str, RunContext] = {}
        self._images: OrderedDict[str, DecodedImage] = OrderedDict()
        self._cached = cached_images
        self._lock = threading.Lock()  # one redraw at a time: the two cores are the network's

    def run(self, run_id: str) -> RunContext:
        if run_id not in self._runs:
            layout = DestLayout(self.dest, "")
            info = json.loads(read_bytes(join(layout.report(run_id), RUN_INFO)))
            ref = resolve_model(info["model_uri"])
            pkg = load_package(ref.directory)
            cfg = ColorizeConfig.from_settings(info["settings"])
            self._runs[run_id] = RunContext(pkg, cfg, engine_for(pkg, ref.sha256, cfg.size)[0], info["sources"])
        return self._runs[run_id]

    def image(self, url: str) -> DecodedImage:
        if url not in self._images:
            self._images[url] = decode_image(retrying(lambda: read_bytes(url), url), url)
            while len(self._images) > self._cached:
                self._images.popitem(last=False)
        self._images.move_to_end(url)
        return self._images[url]

    def _item(self, run_id: str, key: str) -> tuple[RunContext, DecodedImage]:
        ctx = self.run(run_id)
        if key not in ctx.sources:
            raise KeyError(f"run {run_id} has no item {key!r}")
        return ctx, self.image(ctx.sources[key])

    def preview(self, run_id: str, key: str, hints: list[dict]) -> bytes:
        """The item's preview with `hints` (the hints format's list for one image), as a JPEG."""
        parsed = parse_hints({"version": HINTS_VERSION, "images": {key: hints}}, "hints")[key]
        with self._lock:
            ctx, img = self._item(run_id, key)
            batch = ColorizedBatch(ctx.pkg, [img], ctx.cfg, ctx.engine, [parsed])
            return jpeg_bytes(batch.preview(0, PREVIEW), quality=85)

    def suggest(self, run_id: str, key: str, x: float, y: float, k: int = 5) -> list[str]:
        """The model's `k` most likely colours at (x, y) (fractions of width and height), each with the
        photo's own lightness there, as sRGB hex: the 2017 paper's suggestions."""
        with self._lock:
            ctx, img = self._item(run_id, key)
            L = network_input(img, ctx.cfg.size)[None]  # (1, S, S)
            pred = run(ctx.pkg.model, L[:, None], ctx.engine)
        if pred.logits is None:  # a network that regresses ab has no distribution to suggest from
            return []
        logits = pred.logits[0]  # (Q, h, w)
        h, w = logits.shape[1:]
        probs = torch.softmax(logits[:, min(int(y * h), h - 1), min(int(x * w), w - 1)].float(), 0)
        top = torch.topk(probs, k).indices.numpy()
        S = L.shape[-1]
        lightness = float(L[0, min(int(y * S), S - 1), min(int(x * S), S - 1)])
        ab = ctx.pkg.model.centres[top].detach().numpy()  # (k, 2)
        lab = np.concatenate([np.full((k, 1), lightness), ab], 1)[None].astype(np.float32)  # (1, k, 3)
        rgb = (np.clip(lab_to_rgb(lab)[0], 0, 1) * 255).round().astype(int)
        return [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in rgb]


def handler(service: ReviewService):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # the terminal stays for what the command says
            pass

        def _send(self, code: int, body: bytes, kind: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, code: int, value) -> None:
            self._send(code, json.dumps(value).encode(), "application/json")

        def do_GET(self) -> None:
            path = posixpath.normpath(self.path.split("?", 1)[0]).lstrip("/")
            if path == "api/health":
                return self._json(200, {"ok": True})
            if path == "favicon.ico":  # browsers ask; the page has none
                return self._send(204, b"", "image/x-icon")
            if path.startswith("..") or "/../" in f"/{path}/" or not path or path == ".":
                return self._json(404, {"error": "not found"})
            try:
                data = read_bytes(join(service.dest, unquote(path)))
            except (FileNotFoundError, IsADirectoryError):
                return self._json(404, {"error": f"no {path} under the destination"})
            self._send(200, data, mimetypes.guess_type(path)[0] or "application/octet-stream")

        def do_POST(self) -> None:
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
                t0 = time.perf_counter()
                if self.path == "/api/preview":
                    data = service.preview(body["run"], body["key"], body.get("hints", []))
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.send_header("Content-Length", str(len(data)))
                    self.send_header("X-Preview-Seconds", f"{time.perf_counter() - t0:.3f}")
                    self.end_headers()
                    self.wfile.write(data)
                elif self.path == "/api/suggest":
                    self._json(200, {"colors": service.suggest(body["run"], body["key"], float(body["x"]), float(body["y"]))})
                else:
                    self._json(404, {"error": "not found"})
            except (KeyError, ValueError, TypeError) as e:
                self._json(400, {"error": f"{type(e).__name__}: {e}"})

    return Handler


def serve(dest: str, port: int = 0) -> ThreadingHTTPServer:
    """The server for DEST on 127.0.0.1 (a free port when 0); the caller runs `serve_forever`."""
    return ThreadingHTTPServer(("127.0.0.1", port), handler(ReviewService(dest)))

