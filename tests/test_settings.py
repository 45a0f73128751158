"""Every setting comes from the environment; a bad one is refused in one line that names it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from audit.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from audit.hasher import EMPTY_ROOT
from gateway._cli import app
from gateway.errors import ConfigurationError
from gateway.settings import DEVELOPMENT_ORIGIN, Settings

runner = CliRunner()

# A value for each setting, unlike its default: (environment text, the value it becomes).
SAMPLES: dict[str, tuple[str, Any]] = {
    "policies_dir": ("/srv/doelpoort/policies", Path("/srv/doelpoort/policies")),
    "connectors_dir": ("/srv/doelpoort/connectors", Path("/srv/doelpoort/connectors")),
    "var_dir": ("/var/lib/doelpoort", Path("/var/lib/doelpoort")),
    "host": ("gateway.example.nl", "gateway.example.nl"),
    "port": ("9443", 9443),
    "ops_host": ("10.0.0.5", "10.0.0.5"),
    "ops_port": ("9081", 9081),
    "proxy_socket": ("/run/doelpoort/gateway.sock", Path("/run/doelpoort/gateway.sock")),
    "public_url": ("https://gateway.example.nl/doelpoort/", "https://gateway.example.nl/doelpoort"),
    "origin": ("gateway.example.nl/doelpoort/audit", "gateway.example.nl/doelpoort/audit"),
    "policy_timeout_s": ("2.5", 2.5),
    "max_body_bytes": ("131072", 131072),
    "refusals_per_minute": ("600", 600),
    "policy_engine": ("opa", "opa"),
    "opa_url": ("http://127.0.0.1:8181/", "http://127.0.0.1:8181"),
    "policy_digest": ("sha256:" + "ab" * 32, "sha256:" + "ab" * 32),
    "policy_bundle": ("/srv/doelpoort/policies.tar.gz", Path("/srv/doelpoort/policies.tar.gz")),
    "policy_bundle_key": ("/srv/doelpoort/policies.pub", Path("/srv/doelpoort/policies.pub")),
    "policy_watch_s": ("0", 0.0),
    "policy_reload_tests": ("false", False),
}


def test_the_samples_cover_every_setting() -> None:
    assert set(SAMPLES) == set(Settings.model_fields)


@pytest.mark.parametrize("field", sorted(SAMPLES))
def test_every_setting_can_be_set_from_the_environment(
    field: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    text, value = SAMPLES[field]
    defaults = Settings.from_env()
    monkeypatch.setenv(f"DOELPOORT_{field.upper()}", text)
    settings = Settings.from_env()
    assert getattr(settings, field) == value != getattr(defaults, field)
    changed = {k for k, v in settings.model_dump().items() if v != getattr(defaults, k)}
    assert changed == {field}


def test_an_empty_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOELPOORT_PROXY_SOCKET", "")
    monkeypatch.setenv("DOELPOORT_PORT", "")
    settings = Settings.from_env()
    assert settings.proxy_socket is None
    assert settings.port == 8443


def test_no_dotenv_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("DOELPOORT_PORT=1\nDOELPOORT_ORIGIN=elsewhere/log\n")
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env()
    assert (settings.port, settings.origin) == (8443, DEVELOPMENT_ORIGIN)


BAD = [
    ("DOELPOORT_PORT", "99999", "a port number from 0 to 65535"),
    ("DOELPOORT_PORT", "-1", "a port number from 0 to 65535"),
    ("DOELPOORT_PORT", "abc", "a port number from 0 to 65535"),
    ("DOELPOORT_PORT", "8443.5", "a port number from 0 to 65535"),
    ("DOELPOORT_HOST", "local host", "a host name or IP address"),
    ("DOELPOORT_OPS_HOST", "local host", "a host name or IP address"),
    ("DOELPOORT_OPS_PORT", "65536", "a port number from 0 to 65535"),
    ("DOELPOORT_ORIGIN", "doelpoort example", "a checkpoint origin"),
    ("DOELPOORT_ORIGIN", "doelpoort+example", "a checkpoint origin"),
    ("DOELPOORT_ORIGIN", "two\nlines", "a checkpoint origin"),
    ("DOELPOORT_ORIGIN", "a\ttab", "a checkpoint origin"),
    ("DOELPOORT_ORIGIN", "no\u00a0break", "a checkpoint origin"),
    ("DOELPOORT_ORIGIN", "bell\x07", "a checkpoint origin"),
    ("DOELPOORT_ORIGIN", "x" * 256, "a checkpoint origin"),
    ("DOELPOORT_PUBLIC_URL", "http://gateway.example.nl", "an https URL"),
    ("DOELPOORT_PUBLIC_URL", "partners.example.org", "an https URL"),
    ("DOELPOORT_PUBLIC_URL", "https:///no-host", "an https URL"),
    ("DOELPOORT_PUBLIC_URL", "https://user:pw@gateway.example.nl", "an https URL"),
    ("DOELPOORT_PUBLIC_URL", "https://gateway.example.nl/?x=1", "an https URL"),
    ("DOELPOORT_PUBLIC_URL", "https://gateway.example.nl/#x", "an https URL"),
    ("DOELPOORT_PUBLIC_URL", "https://gateway.example.nl:99999", "an https URL"),
    ("DOELPOORT_PUBLIC_URL", "https://gateway example.nl", "an https URL"),
    ("DOELPOORT_POLICY_TIMEOUT_S", "0", "a number of seconds above 0 and at most 60"),
    ("DOELPOORT_POLICY_TIMEOUT_S", "-1", "a number of seconds above 0 and at most 60"),
    ("DOELPOORT_POLICY_TIMEOUT_S", "nan", "a number of seconds above 0 and at most 60"),
    ("DOELPOORT_POLICY_TIMEOUT_S", "inf", "a number of seconds above 0 and at most 60"),
    ("DOELPOORT_POLICY_TIMEOUT_S", "61", "a number of seconds above 0 and at most 60"),
    ("DOELPOORT_POLICY_TIMEOUT_S", "soon", "a number of seconds above 0 and at most 60"),
    ("DOELPOORT_MAX_BODY_BYTES", "0", "a number of bytes from 1024 to 1048576"),
    ("DOELPOORT_MAX_BODY_BYTES", "1023", "a number of bytes from 1024 to 1048576"),
    ("DOELPOORT_MAX_BODY_BYTES", "1048577", "a number of bytes from 1024 to 1048576"),
    ("DOELPOORT_MAX_BODY_BYTES", "64k", "a number of bytes from 1024 to 1048576"),
    ("DOELPOORT_REFUSALS_PER_MINUTE", "-1", "a number of refusals from 0 to 100000"),
    ("DOELPOORT_REFUSALS_PER_MINUTE", "lots", "a number of refusals from 0 to 100000"),
    ("DOELPOORT_POLICY_ENGINE", "OPA-server", "embedded or opa"),
    ("DOELPOORT_OPA_URL", "opa.example.nl:8181", "an http(s) URL of host and port only"),
    ("DOELPOORT_OPA_URL", "ftp://opa.example.nl", "an http(s) URL of host and port only"),
    ("DOELPOORT_OPA_URL", "http://opa.example.nl/v1", "an http(s) URL of host and port only"),
    ("DOELPOORT_OPA_URL", "http://u:pw@opa.example.nl", "an http(s) URL of host and port only"),
    ("DOELPOORT_OPA_URL", "http://opa.example.nl:99999", "an http(s) URL of host and port only"),
    ("DOELPOORT_POLICY_DIGEST", "sha256:" + "AB" * 32, "a policy digest"),
    ("DOELPOORT_POLICY_DIGEST", "ab" * 32, "a policy digest"),
    ("DOELPOORT_POLICY_DIGEST", "sha256:abc", "a policy digest"),
    ("DOELPOORT_POLICY_WATCH_S", "-1", "a number of seconds from 0 (off) to 3600"),
    ("DOELPOORT_POLICY_WATCH_S", "nan", "a number of seconds from 0 (off) to 3600"),
    ("DOELPOORT_POLICY_WATCH_S", "3601", "a number of seconds from 0 (off) to 3600"),
]


@pytest.mark.parametrize(("name", "value", "must_be"), BAD, ids=lambda v: repr(v)[:30])
def test_a_bad_value_is_one_line_naming_the_variable(
    tmp_path: Path, name: str, value: str, must_be: str
) -> None:
    var = tmp_path / "var"
    result = runner.invoke(app, ["setup", "--var-dir", str(var)], env={name: value})
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    (line,) = result.output.splitlines()
    assert line.startswith(f"{name} must be {must_be}")
    assert len(value) < 2 or value not in line  # named, never quoted
    assert not var.exists()  # refused before anything was done


def test_every_bad_value_is_named_in_the_one_line(tmp_path: Path) -> None:
    env = {"DOELPOORT_PORT": "70000", "DOELPOORT_ORIGIN": "a b", "DOELPOORT_VAR_DIR": ""}
    result = runner.invoke(app, ["audit", "verify", "--var-dir", str(tmp_path)], env=env)
    assert result.exit_code == 1
    (line,) = result.output.splitlines()
    assert "DOELPOORT_PORT must be" in line
    assert "DOELPOORT_ORIGIN must be" in line


def test_serve_refuses_a_bad_port_from_the_environment(tmp_path: Path) -> None:
    args = ["serve", "--var-dir", str(tmp_path / "var")]
    result = runner.invoke(app, args, env={"DOELPOORT_PORT": "99999"})
    assert result.exit_code == 1
    assert result.output.splitlines() == ["DOELPOORT_PORT must be a port number from 0 to 65535"]


def test_a_changed_copy_is_validated_too() -> None:
    settings = Settings.from_env()
    assert settings.replace(port=0).port == 0
    with pytest.raises(ConfigurationError, match=r"^port must be a port number from 0 to 65535$"):
        settings.replace(port=70000)
    with pytest.raises(ConfigurationError, match="no_such_setting"):
        settings.replace(no_such_setting=1)


_LOG_KEY = Ed25519PrivateKey.generate()


@given(st.text(max_size=40))
def test_every_origin_the_settings_accept_can_name_a_signed_checkpoint(origin: str) -> None:
    try:
        settings = Settings.from_env().replace(origin=origin)
    except ConfigurationError:
        return
    # The origin is both the checkpoint's first line and its signing key's name.
    note = sign_checkpoint(Checkpoint(origin=origin, size=0, root=EMPTY_ROOT), origin, _LOG_KEY)
    opened = open_checkpoint(note, settings.origin, _LOG_KEY.public_key(), settings.origin)
    assert opened.origin == origin


@pytest.mark.parametrize(
    "origin", ["gateway.example.nl/doelpoort/audit", "example.org/log", "log-1", "ünïcode.nl/a"]
)
def test_origins_of_the_recommended_shape_are_accepted(origin: str) -> None:
    assert Settings.from_env().replace(origin=origin).origin == origin


def test_keys_init_warns_of_the_development_origin(tmp_path: Path) -> None:
    var = str(tmp_path / "var")
    result = runner.invoke(app, ["keys", "init", "--var-dir", var])
    assert result.exit_code == 0, result.output
    assert "DOELPOORT_ORIGIN" in result.output
    own = {"DOELPOORT_ORIGIN": "gateway.example.nl/doelpoort/audit"}
    result = runner.invoke(app, ["keys", "init", "--var-dir", str(tmp_path / "v2")], env=own)
    assert result.exit_code == 0, result.output
    assert "DOELPOORT_ORIGIN" not in result.output
