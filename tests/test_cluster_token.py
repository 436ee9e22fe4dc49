"""`ganforge cluster up` never starts an open Ray head: where no token exists it makes one,
which only its user can read, and it keeps the one that nodes and clients already hold."""

import stat

from cluster.connect import ensure_token


def _no_auth_settings(monkeypatch, path):
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(path))
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)


def test_a_missing_token_is_made_for_its_user_only_and_then_kept(tmp_path, monkeypatch):
    path = tmp_path / "ray" / "auth_token"
    _no_auth_settings(monkeypatch, path)
    assert ensure_token() == path
    token = path.read_text()
    assert len(token) == 64 and len(bytes.fromhex(token)) == 32  # 256 random bits, as Ray's own
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_token() == path and path.read_text() == token


def test_no_token_file_is_made_when_authentication_is_off_or_the_token_is_inline(tmp_path, monkeypatch):
    path = tmp_path / "auth_token"
    _no_auth_settings(monkeypatch, path)
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    assert ensure_token() is None
    monkeypatch.delenv("RAY_AUTH_MODE")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "0" * 64)
    assert ensure_token() is None and not path.exists()
