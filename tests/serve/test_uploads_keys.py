"""Uploads land only inside a fresh temp dir; keys CLI contract; bind refusal; limiter maths."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from secfoundry.serve.appkit import UploadedFile, safe_name, write_uploads
from secfoundry.serve.config import ServeConfig, is_loopback
from secfoundry.serve.ratelimit import RateLimiter, retry_after_header
from secfoundry.serve.server import StartupRefused, check_bind


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/shadow", "..", ".", ".bashrc", "a/../../b",
                                  "..\\..\\windows\\win.ini", "x" * 400, "", "nul\x00byte", "ok name (1).yaml"])
def test_upload_names_cannot_escape(name: str) -> None:
    d = write_uploads([(name, b"data"), (name, b"again")])
    try:
        files = sorted(p for p in d.rglob("*"))
        assert len(files) == 2 and all(p.parent == d and p.is_file() for p in files)
        assert all(not p.name.startswith(".") and "/" not in p.name and len(p.name) <= 130 for p in files)
    finally:
        shutil.rmtree(d)


def test_safe_name_keeps_type_hints() -> None:
    used: set[str] = set()
    assert safe_name("deploy/Dockerfile", used) == "Dockerfile"
    assert safe_name("k8s/pod.yaml", used) == "pod.yaml"
    assert safe_name("other/pod.yaml", used) == "2_pod.yaml"


def test_uploaded_file_content_forms() -> None:
    assert UploadedFile(name="a", content="x").data() == b"x"
    assert UploadedFile(name="a", content_b64=base64.b64encode(b"\x00PK").decode()).data() == b"\x00PK"
    with pytest.raises(ValueError, match="content_b64"):
        UploadedFile(name="a", content_b64="***").data()
    with pytest.raises(ValueError, match="content"):
        UploadedFile(name="a").data()


def test_keys_cli_add_prints_key_last_and_list_never_shows_it(tmp_path: Path, monkeypatch) -> None:
    from secfoundry.cli import app

    monkeypatch.setenv("SECFOUNDRY_HOME", str(tmp_path))
    r = CliRunner().invoke(app, ["serve", "keys", "add", "soar"])
    assert r.exit_code == 0
    key = r.output.strip().splitlines()[-1]
    assert key.startswith("sf_") and len(key) > 40 and " " not in key
    listing = CliRunner().invoke(app, ["serve", "keys", "list", "--json"]).output
    assert key not in listing and key[:8] in listing
    assert CliRunner().invoke(app, ["serve", "keys", "revoke", "soar"]).exit_code == 0
    assert CliRunner().invoke(app, ["serve", "keys", "revoke", "soar"]).exit_code == 1  # nothing active left
    assert CliRunner().invoke(app, ["serve", "keys", "add", "bad name!"]).exit_code == 2


def test_refuses_exposed_host_without_keys() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.5") and not is_loopback("example.org")
    with pytest.raises(StartupRefused, match="no API key"):
        check_bind(ServeConfig(host="0.0.0.0"), active_keys=0)
    check_bind(ServeConfig(host="0.0.0.0"), active_keys=1)
    check_bind(ServeConfig(host="127.0.0.1"), active_keys=0)
    with pytest.raises(StartupRefused, match="CORS"):
        check_bind(ServeConfig(cors_origins=["*"]), active_keys=1)
    with pytest.raises(StartupRefused, match="model spec"):
        check_bind(ServeConfig(model="nonsense::"), active_keys=1)


def test_serve_cli_refuses_exposed_host(tmp_path: Path, monkeypatch) -> None:
    from secfoundry.cli import app

    monkeypatch.setenv("SECFOUNDRY_HOME", str(tmp_path))
    r = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0", "--port", "8999"])
    assert r.exit_code == 2 and "refusing" in r.output


def test_token_bucket_and_retry_after() -> None:
    now = [0.0]
    rl = RateLimiter(60, 2, clock=lambda: now[0])  # 1 token/s, burst 2
    assert rl.check("a") == 0 and rl.check("a") == 0
    wait = rl.check("a")
    assert 0.9 < wait <= 1.0 and retry_after_header(wait) == "1"
    assert rl.check("b") == 0  # per key
    now[0] += 1.0
    assert rl.check("a") == 0
