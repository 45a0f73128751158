"""Bad input gets a clear 4xx problem document, never a 500, and loses nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.gateway_support import Deployment

PROBLEM = "application/problem+json"


def valid_body(gateway: Deployment) -> dict[str, Any]:
    return {
        "purpose": "ct-assessment",
        "case_ref": "CTI-2026-0042",
        "justification": "test",
        "subject": gateway.subjects["ct_subject"],
    }


def post_raw(
    gateway: Deployment, content: bytes, content_type: str = "application/json"
) -> httpx.Response:
    with gateway.client("politie") as client:
        return client.post(
            "/v1/disclosures", content=content, headers={"content-type": content_type}
        )


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    problem: dict[str, Any] = response.json()
    assert problem["type"] == f"urn:doelpoort:problem:{code}"
    assert problem["status"] == status
    assert problem["title"]
    assert problem["detail"]
    return problem


def test_body_over_64_kib_is_413(gateway: Deployment) -> None:
    body = valid_body(gateway)
    body["justification"] = "x" * (70 * 1024)
    assert_problem(
        post_raw(gateway, httpx.Request("POST", "/", json=body).content), 413, "payload-too-large"
    )


def test_chunked_body_over_the_limit_is_413(gateway: Deployment) -> None:
    def chunks() -> Any:
        for _ in range(80):
            yield b" " * 1024

    with gateway.client("politie") as client:
        response = client.post(
            "/v1/disclosures", content=chunks(), headers={"content-type": "application/json"}
        )
    assert_problem(response, 413, "payload-too-large")


def test_wrong_media_type_is_415(gateway: Deployment) -> None:
    assert_problem(
        post_raw(gateway, b"purpose=x", "application/x-www-form-urlencoded"),
        415,
        "unsupported-media-type",
    )
    assert_problem(post_raw(gateway, b"{}", "text/plain"), 415, "unsupported-media-type")


@pytest.mark.parametrize(
    "content",
    [
        b"{",
        b"not json",
        b"\xff\xfe",
        b"[]",
        b"null",
        b'{"purpose": 1}',
        b'{"purpose": ' + b"9" * 5000 + b"}",  # beyond Python's int digit limit
    ],
)
def test_malformed_json_is_422(gateway: Deployment, content: bytes) -> None:
    assert_problem(post_raw(gateway, content), 422, "invalid-request")


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (b"{", "the request body is not valid JSON"),
        (b"not json", "the request body is not valid JSON"),
        (b"[]", "the request body does not match the schema"),
        (b'{"purpose": 1}', "the request body does not match the schema"),
    ],
)
def test_the_detail_tells_invalid_json_from_a_wrong_shape(
    gateway: Deployment, content: bytes, detail: str
) -> None:
    assert assert_problem(post_raw(gateway, content), 422, "invalid-request")["detail"] == detail


@pytest.mark.parametrize(
    "content",
    [
        b'{"purpose": "vertrek", "purpose": "ct-assessment"}',
        b'{"purpose": "ct-assessment", "case_ref": "CTI-2026-1", "justification": "j",'
        b' "subject": {"bsn": "999900997", "bsn": "999901011"}}',
        # A NaN before the repeat must not let it pass as "not JSON" to pydantic-core,
        # which takes NaN and keeps the last name.
        b'{"justification": NaN, "purpose": "ct-assessment", "case_ref": "CTI-2026-1",'
        b' "subject": {"bsn": "999900997"}, "justification": "j"}',
    ],
)
def test_a_repeated_member_name_is_422_without_naming_it(
    gateway: Deployment, content: bytes
) -> None:
    # I-JSON (RFC 7493): parsers disagree on which value counts, so neither does.
    response = post_raw(gateway, content)
    assert_problem(response, 422, "invalid-request")
    assert "repeats a member name" in response.json()["detail"]
    assert b"999900997" not in response.content


def test_deep_nesting_is_422(gateway: Deployment) -> None:
    assert_problem(post_raw(gateway, b"[" * 5000 + b"]" * 5000), 422, "invalid-request")
    nested = b'{"subject": ' + b'{"a":' * 100 + b"1" + b"}" * 101
    assert_problem(post_raw(gateway, nested), 422, "invalid-request")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("purpose", "x" * 200),
        ("purpose", "Bad Purpose"),
        ("case_ref", "x" * 500),
        ("case_ref", "999900997"),  # an identifier is not a case reference
        ("case_ref", "CTI-2026-999900997"),
        ("case_ref", "A999900997-2026-1"),  # a BSN in the prefix
        ("case_ref", "2026/0042"),  # a format the register does not list
        ("case_ref", "09/123456-26\n"),
        ("subject", {"v_number": "٩٩٠٠٠٠٠٠٠٢"}),  # Arabic-Indic digits
        ("subject", {"name": "X", "date_of_birth": "١٩٩٠-01-01"}),
        ("subject", {"name": "X", "date_of_birth": "2026-02-31"}),  # no such day
        ("subject", {"name": "X", "date_of_birth": "0000-01-01"}),  # no year 0
        ("justification", "x" * 5000),
        ("justification", None),
        ("datasets", []),
        ("datasets", ["not a dataset"]),
        ("datasets", ["ind/residence"] * 100),
        ("subject", {}),
        ("subject", {"bsn": "123456789"}),  # fails the eleven-test
        ("subject", {"bsn": 123456782}),  # wrong type
        ("subject", {"name": "Only A Name"}),
        ("subject", {"bsn": "1" * 10_000}),
        ("subject", {"shoe_size": "42"}),
        ("unexpected", "field"),
    ],
)
def test_invalid_fields_are_422_without_echoing_input(
    gateway: Deployment, field: str, value: Any
) -> None:
    body = valid_body(gateway)
    body[field] = value
    with gateway.client("politie") as client:
        response = client.post("/v1/disclosures", json=body)
    problem = assert_problem(response, 422, "invalid-request")
    if isinstance(value, str) and len(value) > 3:
        assert value not in response.text
    assert all("input" not in error for error in problem["errors"])


def test_a_case_ref_in_any_format_of_the_register_is_accepted(gateway: Deployment) -> None:
    # policies/register.yaml lists the CT Infobox's format and the Public Prosecution's.
    for case_ref in ("CTI-2026-0042", "09/123456-26"):
        body = valid_body(gateway) | {"case_ref": case_ref}
        with gateway.client("om") as client:
            response = client.post("/v1/disclosures", json=body)
        assert response.status_code == 200, response.text
        assert response.json()["disclosure"]["case_ref"] == case_ref


def test_unknown_dataset_is_422(gateway: Deployment) -> None:
    body = valid_body(gateway) | {"datasets": ["nobody/nothing"]}
    with gateway.client("politie") as client:
        assert_problem(client.post("/v1/disclosures", json=body), 422, "unknown-dataset")


def test_unknown_route_and_method_are_problems(gateway: Deployment) -> None:
    with gateway.client("politie") as client:
        assert_problem(client.get("/v1/nothing"), 404, "not-found")
        wrong_method = client.get("/v1/disclosures")
    assert_problem(wrong_method, 405, "method-not-allowed")
    assert wrong_method.headers["allow"] == "POST"  # RFC 9110 §15.5.6


def test_a_trailing_slash_is_404_not_a_redirect_built_from_the_host_header(
    gateway: Deployment,
) -> None:
    with gateway.client("politie") as client:
        response = client.post(
            "/v1/disclosures/", json=valid_body(gateway), headers={"host": "evil.example"}
        )
    assert_problem(response, 404, "not-found")
    assert "location" not in response.headers


def test_server_stays_healthy_after_bad_input(gateway: Deployment) -> None:
    for content in (b"{", b"[" * 10_000, b"\x00" * 1000):
        assert post_raw(gateway, content).status_code < 500
    with gateway.client("politie") as client:
        assert client.get("/healthz").status_code == 200
        ok = client.post("/v1/disclosures", json=valid_body(gateway))
    assert ok.status_code == 200
