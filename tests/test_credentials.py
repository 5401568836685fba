"""The signing identity: configured by the archive, a development one made once otherwise, and a
production deployment that refuses to sign with a development key unless told to."""

import pytest

from tasks.checks import ArgumentError
from tasks.credentials import _make_chain, signing_identity


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
    key, chain = _make_chain()
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
