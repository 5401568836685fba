"""What curators do with outputs: compare versions, verify credentials, review pages and their colour tool."""

from __future__ import annotations

from typing import Optional

import typer

from cli import options as opt
from cli.common import app, clear_errors, show


@app.command()
@clear_errors
def compare(
    dest: str = typer.Argument(..., help="a restoration destination holding outputs of both versions"),
    models: list[str] = typer.Option(
        ...,
        "--models",
        help="the two versions, each a model version (colorizer/3) or its folder under DEST: --models colorizer/3 --models colorizer/4",
    ),
    storage_options: Optional[str] = opt.STORAGE,
    as_json: bool = opt.JSON,
) -> None:
    """A page of the items both versions colorized, side by side, most changed first."""
    from tasks.checks import check_source
    from tasks.model_names import output_folder
    from tasks.review import rows_of_versions

    check_source(dest, "destination")
    folders = [output_folder(m, "--models") for m in models]
    rows_of_versions(dest, folders)  # an unknown version is a one-line error before any flow starts
    from flows.review import compare_flow

    out = compare_flow(dest, folders)
    show(out, as_json, lambda o: f"{o['items']} items compared: {o['page']}")


@app.command()
@clear_errors
def verify(
    target: str = typer.Argument(..., help="one output file, or a restoration destination (every output under it)"),
    storage_options: Optional[str] = opt.STORAGE,
    as_json: bool = opt.JSON,
) -> None:
    """Read the Content Credentials of outputs: valid / untrusted / invalid / missing per item, with the
    model and version each names; only signers of the archive's trust anchors are valid
    (COLORIZE_C2PA_TRUST_ANCHORS). Exit status 1 when any item is not valid."""
    from tasks.checks import check_source
    from tasks.verification import verify_outputs

    check_source(target, "target")
    out = verify_outputs(target)  # no flow: the answer comes without a Prefect API to start
    if as_json:
        import dataclasses

        show(out | {"verdicts": [dataclasses.asdict(v) for v in out["verdicts"]]}, True)
    else:
        _verdicts_table(out)
    raise typer.Exit(0 if out["counts"]["valid"] == len(out["verdicts"]) else 1)


def _verdicts_table(out: dict) -> None:
    width = max([len(v.path) for v in out["verdicts"]] + [4])
    typer.echo(f"{'item':{width}s}  {'status':8s} model")
    for v in out["verdicts"]:
        typer.echo(
            f"{v.path:{width}s}  {v.status:8s} {v.model or '-'} {('v' + v.model_version) if v.model_version else ''} {v.detail}".rstrip()
        )
    typer.echo(", ".join(f"{n} {s}" for s, n in out["counts"].items()) + (f"; recorded in {out['recorded']}" if out["recorded"] else ""))


review_app = typer.Typer(help="Curators' decisions from review pages.")
app.add_typer(review_app, name="review")


@review_app.command("serve")
@clear_errors
def review_serve(
    dest: str = typer.Argument(..., help="a restoration destination (its review pages are served)"),
    port: int = typer.Option(8765, help="port on 127.0.0.1 (0: any free one)"),
    storage_options: Optional[str] = opt.STORAGE,
) -> None:
    """Serve DEST's review pages on 127.0.0.1 with their colour tool: hints placed on an item redraw its
    preview by the run's own model and settings. Ctrl-C stops it."""
    from tasks.checks import check_source
    from tasks.review_server import serve
    from tasks.storage import filesystem, join

    check_source(dest, "destination")
    server = serve(dest, port)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    fs, root = filesystem(join(dest, "_reports"))
    pages = sorted(fs.glob(join(root, "*", "index.html"))) if fs.exists(root) else []
    for page in pages:
        typer.echo(f"{base}/_reports/{page.rsplit('/', 2)[-2]}/index.html")
    typer.echo(f"serving {dest} at {base} (Ctrl-C stops)" if pages else f"serving {dest} at {base}: it has no review page yet")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@review_app.command("import")
@clear_errors
def review_import(
    decisions: str = typer.Argument(..., help="decisions (JSON or CSV) or hints (JSON) exported from a review page"),
    dest: str = typer.Argument(..., help="the destination they are about"),
    storage_options: Optional[str] = opt.STORAGE,
    as_json: bool = opt.JSON,
) -> None:
    """Record curators' decisions as Parquet under DEST/_decisions/ (`restore --only-rejected` reads them),
    or their colour hints under DEST/_hints/ (`restore --hints imported` reads the latest)."""
    from tasks.checks import check_source
    from tasks.decisions import import_review_export

    check_source(decisions, "decisions file")
    check_source(dest, "destination")
    out = import_review_export(decisions, dest)  # no flow: no Prefect API to start
    show(out, as_json, lambda o: f"hints for {o['hints']} items recorded: {o['recorded']} (colorize restore SOURCE DEST --hints imported)"
         if "hints" in o else f"{o['decisions']} decisions recorded: {o['recorded']}")  # fmt: skip
