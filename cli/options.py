"""The options that several verbs share, defined once; a verb names them as `opt.MODEL`, `opt.JSON`.
Values are checked while the arguments are read, before anything heavy is imported."""

from __future__ import annotations

import functools
import inspect
import json
import os
from typing import Optional

import typer

from cli.common import DEFAULT_MODEL, given, one_of, usage_error
from colorize_core.choices import DECODES, ENGINES, UPSAMPLES, engine_parts


def _model_uri(value: str) -> str:
    from tasks.checks import ArgumentError
    from tasks.model_names import model_uri

    try:
        return model_uri(value)
    except ArgumentError as e:
        usage_error(str(e))


def _storage_options(value: Optional[str]) -> Optional[str]:
    """`--storage-options` JSON reaches every fsspec call through the environment."""
    if value:
        try:
            json.loads(value)
        except json.JSONDecodeError as e:
            usage_error(f"--storage-options is not JSON: {e}")
        os.environ["COLORIZE_STORAGE_OPTIONS"] = value
    return value


def _engine(value: Optional[str]) -> Optional[str]:
    """`--engine` reaches the workers of a local cluster through the environment (COLORIZE_ENGINE, which
    a remote cluster's workers take from their own)."""
    if value:
        try:
            engine_parts(value)
        except ValueError as e:
            usage_error(f"--engine: {e}")
        os.environ["COLORIZE_ENGINE"] = value
    return value


MODEL = typer.Option(
    DEFAULT_MODEL,
    callback=_model_uri,
    help="model version: models:/colorizer@champion, models:/colorizer/3 (or colorizer/3, colorizer@champion) or a package folder",
)
JSON = typer.Option(False, "--json", help="print the result as JSON instead of prose")
STORAGE = typer.Option(None, callback=_storage_options, help="fsspec options as JSON, for s3:// and other remote URLs")
DASK = typer.Option(None, help="scheduler address of an existing Dask cluster", show_default="a local cluster")
WORKERS = typer.Option(2, help="worker processes of the local cluster when no address is given")
DECODE = typer.Option(
    None,
    callback=lambda v: one_of(v, DECODES, "decode"),
    help=f"{' | '.join(DECODES)}: how a pixel's 313 probabilities become a colour",
    show_default="the model package's own",
)
TEMPERATURE = typer.Option(None, help="temperature T (annealed mean, top-k, confident)")
TOP_K = typer.Option(None, help="bins kept by top-k")
UPSAMPLE = typer.Option(
    None, callback=lambda v: one_of(v, UPSAMPLES, "upsampling"), help="guided (the colour follows the original's edges) | bilinear", show_default="guided"
)
SIZE = typer.Option(None, help="the network's working size", show_default="256")
ENGINE = typer.Option(
    None,
    callback=_engine,
    help=f"{' | '.join(ENGINES)}, optionally with float32 | bfloat16: what runs the network",
    show_default="the fastest that keeps the colours here, measured once per model and CPU",
)
CREDENTIALS = typer.Option(True, help="sign Content Credentials (C2PA) into every output")
MODEL_NAME = typer.Option("colorizer", help="registered model name")
SPLIT_BY_FOLDER = typer.Option(False, help="SOURCE/train and SOURCE/val decide the split")
BINS_METHOD = typer.Option("grid", help="grid (in-gamut cells of the data) | kmeans | canonical (the 313 reference bins)")
ARCH = typer.Option("small", help="eccv16 | medium | small | tiny")
TRAIN_CONFIG = typer.Option(None, help="JSON file of TrainConfig fields (nested sections as objects)")
TRAIN_SET = typer.Option([], "--set", help="KEY=VALUE on TrainConfig, e.g. steps=8000, augment.crop=176 (see `colorize train-settings`)")
INIT_MODEL = typer.Option(None, help="fine-tune this model version (as --model elsewhere; needs canonical bins) instead of starting from scratch")
LOOK = {  # what makes an output look as it does: part of its identity (see tasks.outputs)
    "decode": (Optional[str], DECODE),
    "temperature": (Optional[float], TEMPERATURE),
    "top_k": (Optional[int], TOP_K),
    "upsample": (Optional[str], UPSAMPLE),
    "size": (Optional[int], SIZE),
}


def look_options(fn):
    """Adds the look options to a verb (restore and image take them alike) and hands it the ones the
    user gave as one dict, `look`; Typer reads the options from the signature made here."""
    sig = inspect.signature(fn)
    extra = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=o, annotation=t) for n, (t, o) in LOOK.items()]

    @functools.wraps(fn)
    def verb(*args, **kw):
        return fn(*args, look=given(**{n: kw.pop(n) for n in LOOK}), **kw)

    own = [p for p in sig.parameters.values() if p.name != "look"]
    at = next((i + 1 for i, p in enumerate(own) if p.name == "model"), len(own))  # the look after the model
    verb.__signature__ = sig.replace(parameters=own[:at] + extra + own[at:])  # inspect.signature stops here, not at fn
    return verb
