"""``make run`` says where the DPO console is, and that address opens with the DPO's
certificate it names."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from gateway.transport.tls import client_ssl_context
from tests.test_serve import serving

CONSOLE_BANNER = re.compile(
    r"DPO console: (https://127\.0\.0\.1:\d+/dpo/) with the DPO's certificate "
    r"\((\S+\.pem), key (\S+\.key);"
)


def test_serve_announces_the_console_and_it_opens_with_the_dpo_certificate(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    var = tmp_path_factory.mktemp("served") / "var"
    env = {"DOELPOORT_VAR_DIR": str(var), "DOELPOORT_PORT": "0", "DOELPOORT_OPS_PORT": "0"}
    with serving(["--setup"], env) as lines:
        found = [m for line in lines if (m := CONSOLE_BANNER.match(line))]
        assert len(found) == 1, "\n".join(lines)
        url, cert, key = found[0].groups()
        context = client_ssl_context(var / "pki" / "ca.pem", Path(cert), Path(key))
        with httpx.Client(verify=context, timeout=10.0) as dpo:
            page = dpo.get(url)
    assert page.status_code == 200
    assert "The audit log at a glance" in page.text
