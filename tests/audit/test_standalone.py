"""The audit package stands on its own: the DPO's offline tools need nothing of the gateway.

Checked in a fresh interpreter each, so that modules other tests imported do not count.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from audit.store import AuditStore
from gateway.keys import create_log_key, load_log_key
from gateway.settings import Settings
from tests.audit.audit_support import make_record

PROJECT = Path(__file__).resolve().parents[2]

# Makes every import of `gateway` (or a module under it) fail, as if it were not installed.
BLOCK_GATEWAY = """
import importlib.abc, sys

class BlockGateway(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "gateway" or name.startswith("gateway."):
            raise ImportError(f"{name} is blocked: audit must stand on its own")
        return None

sys.meta_path.insert(0, BlockGateway())
"""


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_every_audit_module_imports_with_the_gateway_blocked() -> None:
    code = BLOCK_GATEWAY + (
        "import pkgutil, audit\n"
        "names = [m.name for m in pkgutil.walk_packages(audit.__path__, 'audit.')]\n"
        "for name in names:\n"
        "    __import__(name)\n"
        "print(len(names))\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) >= 8  # every module was walked, not an empty package


def test_the_blocker_would_catch_a_gateway_import() -> None:
    result = run_python(BLOCK_GATEWAY + "import gateway.errors\n")
    assert result.returncode != 0
    assert "blocked" in result.stderr


def test_audit_verify_loads_neither_the_policy_engine_nor_the_pipeline(tmp_path: Path) -> None:
    settings = Settings.from_env().with_var_dir(tmp_path / "var")
    create_log_key(settings.keys_dir)
    key = load_log_key(settings.keys_dir)
    store = AuditStore.open(settings.audit_db_path, log_key=key, origin=settings.origin)
    try:
        asyncio.run(store.append([make_record(i) for i in range(5)]))
    finally:
        store.close()
    log_key = tmp_path / "log.pub"
    log_key.write_bytes(
        key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    args = ["audit", "verify", "--var-dir", str(settings.var_dir), "--log-key", str(log_key)]
    code = (
        "import json, sys\n"
        "from typer.testing import CliRunner\n"
        "from gateway._cli import app\n"
        f"result = CliRunner().invoke(app, {args!r})\n"
        "heavy = ('regopy', 'fastapi', 'uvicorn', 'gateway.policy', 'gateway.disclosure',\n"
        "         'gateway.runtime', 'gateway.app', 'gateway.connectors', 'gateway.operators')\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(heavy))\n"
        "verified = 'audit.verify' in sys.modules  # the check sees what the command loaded\n"
        "print(json.dumps({'code': result.exit_code, 'out': result.output, 'loaded': loaded,\n"
        "                  'verified': verified}))\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["code"] == 0, report["out"]
    assert "audit log intact: 5 entries" in report["out"]
    assert report["verified"]
    assert report["loaded"] == []
