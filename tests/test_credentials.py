"""The signing identity: configured by the archive, a development one made once otherwise, and a
production deployment that refuses to sign with a development key unless told to."""

import pytest

from tasks.checks import ArgumentError
from tasks.credentials import make_chain, signing_identity


def test_development_key_is_made_once_and_reused(tmp_path, monkeypatch, capsys):
    for k in ("COLORIZE_C2PA_KEY", "COLORIZE_C2PA_CERT", "COLORIZE_PRODUCTION"):
        monkeypatch.delenv(k, raising=False)
    first = signing_identity(tmp_path)
    said = capsys.readouterr().out
    second = signing_identity(tmp_path)
    assert first == second and first.source == "development" and "development key" in said
    assert "development key" not in capsys.readouterr().out, "said once"
    assert oct((tmp_path / "c2pa" / "dev-signer.key.pem").stat().st_mode)[-3:] == "600"


def test_configured_identity_is_used(tmp_path, monkeypatch):
    key, chain = make_chain()
    (tmp_path / "k.pem").write_bytes(key)
    (tmp_path / "c.pem").write_bytes(chain)
    monkeypatch.setenv("COLORIZE_C2PA_KEY", str(tmp_path / "k.pem"))
    monkeypatch.setenv("COLORIZE_C2PA_CERT", str(tmp_path / "c.pem"))
    ident = signing_identity(tmp_path)
    assert ident.source == "configured" and ident.key == key and not (tmp_path / "c2pa").exists()
    monkeypatch.delenv("COLORIZE_C2PA_CERT")
    with pytest.raises(ArgumentError, match="both"):
        signing_identity(tmp_path)


def test_production_refuses_a_development_key_unless_told(tmp_path, monkeypatch):
    for k in ("COLORIZE_C2PA_KEY", "COLORIZE_C2PA_CERT"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("COLORIZE_PRODUCTION", "1")
    with pytest.raises(ArgumentError, match="production deployment signs with the archive's key"):
        signing_identity(tmp_path)
    monkeypatch.setenv("COLORIZE_ALLOW_DEV_SIGNING", "1")
    assert signing_identity(tmp_path).source == "development"


@pytest.mark.parametrize("value", ["true", "TRUE", "yes", "on"])
def test_production_guard_takes_any_true_value(tmp_path, monkeypatch, value):
    for k in ("COLORIZE_C2PA_KEY", "COLORIZE_C2PA_CERT", "COLORIZE_ALLOW_DEV_SIGNING"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("COLORIZE_PRODUCTION", value)
    with pytest.raises(ArgumentError, match="production deployment"):
        signing_identity(tmp_path)


def _signed(identity) -> bytes:
    import io

    from PIL import Image

    from tasks.credentials import CredentialSigner

    buf = io.BytesIO()
    Image.new("RGB", (48, 32), "tan").save(buf, "JPEG")
    prov = {"note": "colorized", "model": "colorizer", "model_version": "1", "model_sha256": "ab", "date": "2026-12-05"}
    return CredentialSigner(identity).sign(buf.getvalue(), "JPEG", buf.getvalue(), "JPEG", "00", prov, "x.jpg")


def test_only_signers_of_the_archives_trust_anchors_verify_as_valid(tmp_path, monkeypatch):
    """A file signed by anyone's self-made key is intact but not the archive's: untrusted, not valid."""
    from tasks.credentials import SigningIdentity, trust_anchors, verify_bytes

    for k in ("COLORIZE_C2PA_KEY", "COLORIZE_C2PA_CERT", "COLORIZE_C2PA_TRUST_ANCHORS", "COLORIZE_PRODUCTION"):
        monkeypatch.delenv(k, raising=False)
    ours = _signed(signing_identity(tmp_path))  # the development CA of this state folder
    forged = _signed(SigningIdentity(*make_chain(), "configured"))
    anchors = trust_anchors(tmp_path)
    assert b"BEGIN CERTIFICATE" in anchors
    assert verify_bytes(ours, "ours.jpg", "JPEG", anchors).status == "valid"
    forged_verdict = verify_bytes(forged, "forged.jpg", "JPEG", anchors)
    assert forged_verdict.status == "untrusted" and "trust anchors" in forged_verdict.detail
    assert forged_verdict.model == "colorizer", "what the file claims is still shown"
    # anchors configured by the archive replace the development CA
    key, chain = make_chain("Example Archive")
    (tmp_path / "anchors.pem").write_bytes(chain)
    monkeypatch.setenv("COLORIZE_C2PA_TRUST_ANCHORS", str(tmp_path / "anchors.pem"))
    anchors = trust_anchors(tmp_path)
    assert verify_bytes(ours, "ours.jpg", "JPEG", anchors).status == "untrusted"
    archive = verify_bytes(_signed(SigningIdentity(key, chain, "configured")), "a.jpg", "JPEG", anchors)
    assert archive.status == "valid" and "Example Archive" in archive.signer
    tampered = bytearray(ours)
    tampered[-200] ^= 0xFF
    assert verify_bytes(bytes(tampered), "t.jpg", "JPEG", trust_anchors(tmp_path)).status == "invalid"
