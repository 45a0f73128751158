"""Only a DPO opens the DPO's side: every page, API twin, form and static file under
``/dpo`` answers a partner's certificate with 403 ``dpo-only`` (issue 14, point 1).

The routes are enumerated from the running app, so a route added later is covered without
touching this test; each is called over real mutual TLS with a partner's certificate and
with the DPO's.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from fastapi.routing import iter_route_contexts

from gateway.errors import PROBLEM_TYPE_PREFIX
from tests.gateway_support import Deployment

# A well-formed value for each path parameter the DPO's routes take.
SAMPLE_PARAMETERS = {
    "seq": "1",
    "digest": "sha256:" + "0" * 64,
    "disclosure_id": "urn:uuid:00000000-0000-4000-8000-000000000000",
    "name": "console.css",
    "year": "2026",
    "format": "jsonl",
    "fmt": "jsonl",
}
_PARAMETER = re.compile(r"\{([a-z_]+)(?::[a-z]+)?\}")


def dpo_routes(gateway: Deployment) -> Iterator[tuple[str, str, str]]:
    """(method, template, a concrete path) for every route under /dpo."""
    # Routes of included routers too (FastAPI keeps those behind the router that
    # includes them).
    for route in iter_route_contexts(gateway.app.routes):
        if route.path is None or not route.path.startswith("/dpo"):
            continue
        path = _PARAMETER.sub(lambda m: SAMPLE_PARAMETERS[m.group(1)], route.path)
        for method in sorted(route.methods or ()):
            yield method, route.path, path


def call(client: httpx.Client, method: str, path: str) -> httpx.Response:
    if method in ("POST", "PUT", "PATCH"):
        return client.request(method, path, json={})
    return client.request(method, path)


def test_the_dpo_side_has_the_console_pages_and_their_twins(gateway: Deployment) -> None:
    templates = {template for _method, template, _path in dpo_routes(gateway)}
    for page in (
        "/dpo/",
        "/dpo/requests",
        "/dpo/requests/{disclosure_id}",
        "/dpo/entries/{seq}",
        "/dpo/policy-sets/{digest}",
        "/dpo/integrity",
    ):
        assert page in templates
        assert page.replace("/dpo/", "/dpo/api/", 1) in templates
    assert "/dpo/static/{name}" in templates
    assert "/dpo/integrity/verify" in templates


def test_a_partner_certificate_gets_403_on_every_dpo_route(gateway: Deployment) -> None:
    routes = list(dpo_routes(gateway))
    assert len(routes) >= 15
    with gateway.client("politie") as partner:
        for method, template, path in routes:
            response = call(partner, method, path)
            assert response.status_code == 403, (method, template, response.text)
            assert response.json()["type"] == PROBLEM_TYPE_PREFIX + "dpo-only", template
            assert "text/html" not in response.headers["content-type"], template


def test_the_dpo_certificate_opens_every_dpo_route(gateway: Deployment) -> None:
    with gateway.dpo_client() as dpo:
        for method, template, path in dpo_routes(gateway):
            response = call(dpo, method, path)
            # The sample values need not exist (404) or fit a form (422), but the door opens.
            assert response.status_code not in (401, 403), (method, template, response.text)
            assert response.status_code < 500, (method, template, response.text)


@pytest.mark.parametrize("path", ["/dpo/", "/dpo/api/", "/dpo/static/console.js"])
def test_no_certificate_gets_no_console(gateway: Deployment, path: str) -> None:
    with httpx.Client(
        base_url=gateway.base_url, verify=gateway.ssl_context(), timeout=10.0
    ) as anonymous:
        try:
            response = anonymous.get(path)
        except httpx.TransportError:
            return  # the handshake itself refused it
        assert response.status_code == 401


def test_no_dpo_post_route_buffers_a_body_beyond_its_limit(gateway: Deployment) -> None:
    # Every POST under /dpo reads its body itself, after the certificate check and
    # within a limit: a partner's large body is refused before it is read, and a DPO's
    # body over the limit gets 413 (not a pydantic error after buffering it whole).
    limit = gateway.settings.max_body_bytes
    large = b'{"reason": "' + b"x" * (limit + 1) + b'"}'
    posts = [path for method, _template, path in dpo_routes(gateway) if method == "POST"]
    assert "/dpo/api/subjects" in posts
    assert "/dpo/api/escrows/1" in posts
    headers = {"content-type": "application/json"}
    with gateway.client("politie") as partner, gateway.dpo_client() as dpo:
        for path in posts:
            refused = partner.post(path, content=large, headers=headers)
            assert refused.status_code == 403, (path, refused.status_code)
            if path.endswith("/verify"):
                continue  # "verify now" takes no body, and reads none
            too_large = dpo.post(path, content=large, headers=headers)
            assert too_large.status_code == 413, (path, too_large.text)
