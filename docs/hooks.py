"""MkDocs hooks: pages made from the project itself at build time, so they cannot drift from it:
the CLI reference (from the command line's own definitions) and the bundled model's card with
its validation sheet."""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "colorize_core" / "default_model"


def on_files(files, config):
    from cli.reference import markdown

    cli = "# CLI reference\n\nWritten from the command line's own definitions; `colorize VERB --help` says the same.\n\n" + markdown()
    files.append(File.generated(config, "cli.md", content=cli))
    files.append(File.generated(config, "model-card.md", content=(MODEL / "MODEL_CARD.md").read_text()))
    files.append(File.generated(config, "validation_sheet.jpg", abs_src_path=str(MODEL / "validation_sheet.jpg")))
    return files
