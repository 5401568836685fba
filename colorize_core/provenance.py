"""What every output says about itself: colorized automatically, by which model, how.

One dict is the source of every form it takes: EXIF ImageDescription text, an XMP packet, PNG text
chunks, the manifest's row.
"""

from __future__ import annotations

from datetime import datetime, timezone

NOTE = "Colours are an estimate made by a machine-learning model, not a record of the original colours."
SOFTWARE = "colorize-archive"


def provenance(model_name: str, model_version: str, model_sha256: str, settings: dict, when: datetime | None = None) -> dict:
    """`settings` are the decode and colorization settings (ColorizeConfig.settings())."""
    when = when or datetime.now(timezone.utc)
    return {
        "colorized": "automatically",
        "note": NOTE,
        "model": model_name,
        "model_version": model_version,
        "model_sha256": model_sha256,
        **settings,
        "date": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def provenance_text(p: dict) -> str:
    how = ", ".join(f"{k} {v}" for k, v in p.items() if k not in ("colorized", "note", "model", "model_version", "model_sha256", "date"))
    return f"Automatically colorized by model {p['model']} version {p['model_version']} ({how}) on {p['date']}. {p['note']}"


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
