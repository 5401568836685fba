"""Content Credentials (C2PA) in every output: a signed manifest inside the file that any C2PA reader
can verify, saying that a trained model changed this photograph, which model, how, and from which
grey original (its parent ingredient, by hash).

The archive's key and certificate chain come from configuration, never from the repository:
`COLORIZE_C2PA_KEY` and `COLORIZE_C2PA_CERT` hold file paths, or `secret:<name>` for a Prefect
Secret block. Without them the project makes a local development key and chain on first use
(`<state>/c2pa/`) and says so once; a production deployment (`COLORIZE_PRODUCTION` set to any true
value: 1, true, yes, on) refuses to sign with it unless `COLORIZE_ALLOW_DEV_SIGNING=1` says otherwise.

Verification trusts only the archive's own anchors: `COLORIZE_C2PA_TRUST_ANCHORS` (a PEM bundle: path
or `secret:<name>`), else the root of the configured chain, else the development CA. A file whose
signature is intact but whose signer chains to none of them is reported "untrusted", never "valid".
"""

from __future__ import annotations

import io
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from tasks.checks import ArgumentError

DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
MIME = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "TIFF": "image/tiff",
    "WEBP": "image/webp",
    "MPO": "image/jpeg",
    "GIF": "image/gif",
    "BMP": "image/bmp",
}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class SigningIdentity:
    """PEM private key and certificate chain (leaf first), and where they came from."""

    key: bytes
    chain: bytes
    source: str  # "configured" or "development"


def _read(value: str) -> bytes:
    if value.startswith("secret:"):
        from prefect.blocks.system import Secret

        return Secret.load(value.removeprefix("secret:")).get().encode()
    return Path(value).read_bytes()


def development_identity(folder: Path) -> SigningIdentity:
    """A local EC P-256 CA and a leaf certificate for signing (digitalSignature, emailProtection,
    subject and authority key identifiers), made once and kept in `folder`."""
    key_path, chain_path = folder / "dev-signer.key.pem", folder / "dev-signer.chain.pem"
    with _LOCK:
        if not key_path.exists():
            folder.mkdir(parents=True, exist_ok=True)
            key, chain = make_chain()
            tmp = chain_path.with_suffix(".tmp")
            tmp.write_bytes(chain)
            os.replace(tmp, chain_path)
            tmp = key_path.with_suffix(".tmp")
            tmp.write_bytes(key)
            os.chmod(tmp, 0o600)
            os.replace(tmp, key_path)
            print(
                f"Content Credentials: no signing key configured; made a local development key in {folder} and sign with it. "
                "Set COLORIZE_C2PA_KEY and COLORIZE_C2PA_CERT to the archive's own key and certificate chain."
            )
    return SigningIdentity(key_path.read_bytes(), chain_path.read_bytes(), "development")


def truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def make_chain(organisation: str = "colorize-archive development") -> tuple[bytes, bytes]:
    """(PEM key, PEM chain: leaf then CA) of a new signing identity whose certificates name `organisation`."""
    from tasks import x509

    ca_key, key = x509.new_key(), x509.new_key()
    ca_name = x509.name(f"{organisation} CA", organisation)
    ca = x509.certificate(ca_name, ca_key, ca_name, ca_key, 3650, x509.ca_extensions(ca_key))
    leaf = x509.certificate(x509.name(f"{organisation} signer", organisation), key, ca.subject, ca_key, 825, x509.signer_extensions(key, ca_key))
    return x509.key_pem(key), x509.pem(leaf) + x509.pem(ca)


def signing_identity(state: Path) -> SigningIdentity:
    """The configured identity, or the development one where that is allowed."""
    key, cert = os.environ.get("COLORIZE_C2PA_KEY"), os.environ.get("COLORIZE_C2PA_CERT")
    if key and cert:
        try:
            return SigningIdentity(_read(key), _read(cert), "configured")
        except OSError as e:
            raise ArgumentError(f"Content Credentials: cannot read the signing key or certificate ({e})") from None
    if key or cert:
        raise ArgumentError("Content Credentials: set both COLORIZE_C2PA_KEY and COLORIZE_C2PA_CERT, or neither")
    if truthy("COLORIZE_PRODUCTION") and not truthy("COLORIZE_ALLOW_DEV_SIGNING"):
        raise ArgumentError(
            "Content Credentials: a production deployment signs with the archive's key: set COLORIZE_C2PA_KEY and "
            "COLORIZE_C2PA_CERT (paths or secret:<block>), or COLORIZE_ALLOW_DEV_SIGNING=1 to sign with a development key"
        )
    return development_identity(state / "c2pa")


def manifest_definition(prov: dict, title: str, grey_id: str) -> dict:
    """The claim: opened from the grey original (the parent ingredient, `grey_id` = sha256:<its hash>),
    then colorized by a trained model."""
    settings = {k: v for k, v in prov.items() if k not in ("colorized", "note", "model", "model_version", "model_sha256", "date")}
    return {
        "claim_generator_info": [{"name": "colorize-archive", "version": "0.2"}],
        "title": title,
        "assertions": [
            {
                "label": "c2pa.actions.v2",
                "data": {
                    "actions": [
                        {"action": "c2pa.opened", "parameters": {"ingredientIds": [grey_id]}},
                        *_hint_action(prov),
                        {
                            "action": "c2pa.color_adjustments",
                            "description": "Colorized automatically. " + prov["note"],
                            "digitalSourceType": DIGITAL_SOURCE_TYPE,
                            "softwareAgent": {"name": "colorize-archive", "version": "0.2"},
                            "parameters": {
                                "model": prov["model"],
                                "model_version": str(prov["model_version"]),
                                "model_sha256": prov["model_sha256"],
                                "grey_original": grey_id,
                                "settings": settings,
                                "when": prov["date"],
                            },
                        },
                    ]
                },
            }
        ],
    }


def _hint_action(prov: dict) -> list[dict]:
    """A person's edit, when a curator's hints guided the colours: how many, and which (their id)."""
    if not prov.get("hints"):
        return []
    return [{"action": "c2pa.edited", "description": f"Colour hints placed by a person: {prov['hints']} points (hints {prov['hints_id']})",
             "parameters": {"hints": prov["hints"], "hints_id": prov["hints_id"]}}]  # fmt: skip


class CredentialSigner:
    """Signs encoded outputs; one per worker process (the native signer is made once).

    No thumbnails inside the manifest by default (COLORIZE_C2PA_THUMBNAILS=1 adds them): they cost
    fifty times the signed manifest's bytes and time, and the review page has its own thumbnails."""

    def __init__(self, identity: SigningIdentity):
        import c2pa

        self.identity = identity
        self._signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(b"es256", identity.chain, identity.key, None))
        thumbnails = os.environ.get("COLORIZE_C2PA_THUMBNAILS") == "1"
        self._context = c2pa.Context(settings=c2pa.Settings.from_dict({"builder": {"thumbnail": {"enabled": thumbnails}}}))

    def sign(self, data: bytes, fmt: str, grey: bytes, grey_fmt: str, grey_sha256: str, prov: dict, title: str) -> bytes:
        """The output `data` (in `fmt`) with its Content Credentials; `grey` is the source file."""
        import c2pa

        grey_id = f"sha256:{grey_sha256}"
        builder = c2pa.Builder(manifest_definition(prov, title, grey_id), context=self._context)
        ingredient = {"title": f"grey original of {title}", "relationship": "parentOf", "instance_id": grey_id, "label": grey_id}
        builder.add_ingredient(ingredient, MIME.get(grey_fmt, "image/jpeg"), io.BytesIO(grey))
        out = io.BytesIO()
        builder.sign(self._signer, MIME[fmt], io.BytesIO(data), out)
        return out.getvalue()


@dataclass
class Verdict:
    path: str
    status: str  # valid | untrusted | invalid | missing
    model: str | None = None
    model_version: str | None = None
    detail: str = ""
    signer: str | None = None  # the signing certificate's organisation and name, as the file states them


STATUSES = ("valid", "untrusted", "invalid", "missing")


def trust_anchors(state: Path) -> bytes:
    """The PEM certificates a signer must chain to: configured, else the configured chain's root,
    else the development CA (made on first signing)."""
    anchors, cert = os.environ.get("COLORIZE_C2PA_TRUST_ANCHORS"), os.environ.get("COLORIZE_C2PA_CERT")
    try:
        if anchors:
            return _read(anchors)
        if cert:
            return _last_certificate(_read(cert))
    except OSError as e:
        raise ArgumentError(f"Content Credentials: cannot read the trust anchors ({e})") from None
    dev = state / "c2pa" / "dev-signer.chain.pem"
    return _last_certificate(dev.read_bytes()) if dev.exists() else b""


def _last_certificate(chain: bytes) -> bytes:
    end = b"-----END CERTIFICATE-----"
    certs = [c.strip() + b"\n" + end + b"\n" for c in chain.split(end) if c.strip()]
    return certs[-1] if certs else b""


_CONTEXTS: dict[bytes, object] = {}


def _verify_context(anchors: bytes):
    import c2pa

    if anchors not in _CONTEXTS:
        trust = {"trust": {"trust_anchors": anchors.decode()}} if anchors else {}
        _CONTEXTS[anchors] = c2pa.Context(settings=c2pa.Settings.from_dict(trust | {"verify": {"verify_trust": True}}))
    return _CONTEXTS[anchors]


def verify_bytes(data: bytes, path: str, fmt: str, anchors: bytes = b"") -> Verdict:
    """What a C2PA reader says of one file against the trust `anchors` (PEM): valid (intact, and
    signed by a certificate that chains to an anchor), untrusted (intact, but anyone's signature),
    invalid (with the failure codes), or missing (no Content Credentials)."""
    import json

    import c2pa

    try:
        reader = c2pa.Reader(MIME.get(fmt, "image/jpeg"), io.BytesIO(data), context=_verify_context(anchors))
    except c2pa.C2paError as e:
        if "ManifestNotFound" in type(e).__name__ or "not found" in str(e).lower() or "JumbfNotFound" in str(e):
            return Verdict(path, "missing", detail=str(e))
        return Verdict(path, "invalid", detail=f"{type(e).__name__}: {e}")
    results = reader.get_validation_results() or {}
    codes = [f["code"] for f in results.get("activeManifest", {}).get("failure", [])]
    failures = [c for c in codes if c != "signingCredential.untrusted"]
    store = json.loads(reader.json())
    active = store["manifests"][store["active_manifest"]]
    params = next(
        (a["parameters"] for s in active.get("assertions", []) if s["label"].startswith("c2pa.actions") for a in s["data"]["actions"]
         if a.get("digitalSourceType") == DIGITAL_SOURCE_TYPE),
        {},
    )  # fmt: skip
    info = active.get("signature_info", {})
    signer = " / ".join(x for x in (info.get("issuer"), info.get("common_name")) if x) or None
    state = reader.get_validation_state()
    if failures or state not in ("Valid", "Trusted"):
        status, detail = "invalid", ", ".join(failures)
    elif state != "Trusted":
        status, detail = "untrusted", "signed by a certificate that chains to none of the archive's trust anchors"
    else:
        status, detail = "valid", ""
    return Verdict(path, status, params.get("model"), params.get("model_version"), detail, signer)


def ingredient_of(data: bytes) -> str | None:
    """The parent ingredient's id (sha256:<content hash of the grey original>) named by a file's Content
    Credentials, whether or not their signer is trusted; None without credentials."""
    import json

    import c2pa
    from PIL import Image

    try:
        fmt = Image.open(io.BytesIO(data)).format or "JPEG"
        store = json.loads(c2pa.Reader(MIME.get(fmt, "image/jpeg"), io.BytesIO(data)).json())
    except Exception:  # no credentials, or none that can be read
        return None
    active = store["manifests"][store["active_manifest"]]
    return next((i.get("instance_id") for i in active.get("ingredients", []) if i.get("relationship") == "parentOf"), None)


def verify_url(url: str, anchors: bytes = b"") -> Verdict:
    from PIL import Image

    from tasks.storage import read_bytes, retrying

    data = retrying(lambda: read_bytes(url), url)
    try:
        fmt = Image.open(io.BytesIO(data)).format or "JPEG"
    except Exception:
        return Verdict(url, "invalid", detail="not an image")
    return verify_bytes(data, url, fmt, anchors)
