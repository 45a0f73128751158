"""The OpenAPI document says what the gateway does, and says it as the code that does it.

The fuzzing test (test_contract_fuzzing.py) holds the running gateway to the document;
these tests hold the document to the code: the error tree, the routes, the request
validation, the register's purposes and formats.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest
from fastapi import FastAPI
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

import gateway.errors
from gateway.api_models import DisclosureRequest, bsn_is_valid
from gateway.app import create_app
from gateway.case_refs import MAX_CHARS
from gateway.dev.demo_data import FICTITIOUS_BANK_CODE, iban_is_valid
from gateway.errors import DoelpoortError
from gateway.openapi import PROBLEM_JSON, api_routes, openapi_document, problem_types, server_url
from tests.gateway_support import GHOST, Deployment

STATUSES = [400, 401, 403, 404, 405, 413, 415, 422, 431, 503]


@pytest.fixture(scope="module")
def document(gateway: Deployment) -> dict[str, Any]:
    with gateway.client("politie") as client:
        response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    doc: dict[str, Any] = response.json()
    return doc


def validator(document: dict[str, Any], ref: dict[str, Any]) -> jsonschema_rs.Validator:
    """A JSON Schema validator for ``ref`` inside the document, with the bsn format."""
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": document["components"],
        **ref,
    }
    return jsonschema_rs.validator_for(schema, formats={"bsn": bsn_is_valid}, validate_formats=True)


def component(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def response_schema(status: int) -> dict[str, Any]:
    return {"$ref": f"#/components/responses/{status}/content/{_pointer(PROBLEM_JSON)}/schema"}


def _pointer(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


# -- what the document declares --------------------------------------------------------


def test_the_document_declares_mutual_tls_on_every_operation(
    document: dict[str, Any], gateway: Deployment
) -> None:
    assert document["openapi"] == "3.1.0"
    (scheme_name,) = document["components"]["securitySchemes"]
    assert document["components"]["securitySchemes"][scheme_name]["type"] == "mutualTLS"
    operations = [op for item in document["paths"].values() for op in item.values()]
    assert len(operations) == 9  # with the audit log's checkpoint, inclusion and consistency
    assert "/metrics" not in document["paths"]  # the operations listener's, not partners'
    assert all(op["security"] == [{scheme_name: []}] for op in operations)
    assert document["servers"] == [{"url": gateway.base_url, "description": "this gateway"}]


def test_every_status_has_a_problem_response(document: dict[str, Any]) -> None:
    responses = document["components"]["responses"]
    assert sorted(int(status) for status in responses) == STATUSES
    for status in STATUSES:
        (media_type,) = responses[str(status)]["content"]
        assert media_type == PROBLEM_JSON
    disclosures = document["paths"]["/v1/disclosures"]["post"]["responses"]
    assert set(disclosures) == {"200", "400", "401", "403", "413", "415", "422", "431", "503"}
    assert disclosures["422"] == {"$ref": "#/components/responses/422"}


def test_every_problem_type_of_the_error_tree_is_in_the_table(document: dict[str, Any]) -> None:
    table = {t.error: t for t in problem_types()}
    for name in gateway.errors.__all__:
        error = getattr(gateway.errors, name)
        if not isinstance(error, type) or not issubclass(error, DoelpoortError):
            continue
        never_sent = (gateway.errors.ConfigurationError, gateway.errors.VerificationError)
        sent = not issubclass(error, never_sent)
        assert (error in table) is sent, name
    description = document["info"]["description"]
    for problem_type in table.values():
        assert problem_type.meaning
        assert f"| `{problem_type.uri}` |" in description
    branches = document["components"]["schemas"]["Problem"]["oneOf"]
    assert {b["properties"]["type"]["const"] for b in branches} == {
        t.uri for t in table.values() if t.status is not None
    }


def test_each_meaning_is_the_error_trees_own_words() -> None:
    meanings = {t.error.code: t.meaning for t in problem_types()}
    assert meanings["purpose-denied"] == "purpose not granted, or every dataset denied"
    assert meanings["headers-too-large"] == "request line and headers over the limit"
    assert meanings["audit-unavailable"] == "the audit log could not be written durably"
    assert meanings["internal"] == "a bug in the gateway: nothing was disclosed"


def test_a_route_without_a_contract_gets_no_document(gateway: Deployment) -> None:
    app = FastAPI()

    @app.get("/v1/undeclared")
    async def undeclared() -> None: ...

    with pytest.raises(LookupError, match="GET /v1/undeclared has no contract"):
        openapi_document(
            app,
            server_url="/",
            request_model=DisclosureRequest,
            register=gateway.runtime.register,
            datasets={},
        )


def test_every_route_of_the_app_is_in_the_document(
    gateway: Deployment, document: dict[str, Any]
) -> None:
    routes = {
        (method.lower(), route.path)
        for route in api_routes(create_app(gateway.settings))
        if route.include_in_schema
        for method in route.methods or ()
    }
    declared = {(method, path) for path, item in document["paths"].items() for method in item}
    assert declared == routes


def test_the_server_is_the_listeners_address_unless_a_public_url_is_set(
    gateway: Deployment,
) -> None:
    settings = gateway.settings
    assert server_url(settings.replace(port=8443), ("127.0.0.1", 1234)) == "https://127.0.0.1:8443"
    assert server_url(settings, ("127.0.0.1", 1234)) == "https://127.0.0.1:1234"  # port 0
    assert server_url(settings.replace(host="::1", port=8443), None) == "https://[::1]:8443"
    assert server_url(settings.replace(host="0.0.0.0"), None) == "/"  # noqa: S104
    # Behind a proxy the address partners use is the proxy's: relative to the document.
    assert server_url(settings.replace(proxy_socket=Path("/run/gw.sock")), None) == "/"
    public = settings.replace(public_url="https://gateway.example.nl/doelpoort/")
    assert server_url(public, None) == "https://gateway.example.nl/doelpoort"


# -- the request: examples, identity keys, case references ------------------------------


def test_there_is_one_synthetic_example_per_purpose_and_each_reaches_a_decision(
    gateway: Deployment, document: dict[str, Any]
) -> None:
    media = document["paths"]["/v1/disclosures"]["post"]["requestBody"]["content"]
    examples = media["application/json"]["examples"]
    register = gateway.runtime.register
    assert set(examples) == set(register.purposes)
    partners = gateway.runtime.catalog.partners
    for purpose, example in examples.items():
        body = example["value"]
        subject = body["subject"]
        assert all(bsn_is_valid(v) for k, v in subject.items() if k == "bsn")
        assert all(v.startswith("9999") for k, v in subject.items() if k == "bsn")
        ibans = [v for k, v in subject.items() if k == "iban"]
        assert all(FICTITIOUS_BANK_CODE in v and iban_is_valid(v) for v in ibans)
        # Asked by a partner the purpose is granted to, it is decided, and granted.
        roles = set(register.purposes[purpose].requester_roles)
        asker = next(p for p in sorted(partners) if roles & set(partners[p].roles))
        response = gateway.disclose(asker, body)
        assert response.status_code == 200, (purpose, asker, response.text)
    used = {e["value"]["case_ref"] for e in examples.values()}
    assert used == {f.example for f in register.case_ref_formats}


def test_the_request_schema_is_the_request_models(
    gateway: Deployment, document: dict[str, Any]
) -> None:
    model = gateway.runtime.request_model
    own = model.model_json_schema(ref_template="#/components/schemas/{model}")
    served = json.loads(json.dumps(document["components"]["schemas"]["DisclosureRequest"]))
    # The one addition: the datasets the catalog holds (anything else is 422 too).
    items = served["properties"]["datasets"]["anyOf"][0]["items"]
    assert items.pop("enum") == sorted(gateway.runtime.catalog.datasets)
    assert served == {k: v for k, v in own.items() if k != "$defs"}
    assert document["components"]["schemas"]["Subject"] == own["$defs"]["Subject"]


# Values of each key, valid and not, for the schema and the validation to judge alike.
_KEY_VALUES: dict[str, list[Any]] = {
    "bsn": [
        "999990019",
        "999990018",
        "000000000",
        "12345678",
        "\uff19" * 9,  # fullwidth digits
        None,
        999990019,
    ],
    "v_number": ["9900000017", "12345", "٩٩٠٠٠٠٠٠٠٢", None],
    "passport_no": ["XX0000017", "xx0000017", None],
    "iban": ["NL52FICT0000000017", "NL52", None],
    "name": ["Alex Fictief-0017", "", "x" * 201, None],
    "date_of_birth": ["1990-01-17", "2026-02-29", "2024-02-29", "0000-01-01", "1990-1-1", None],
    "shoe_size": ["42"],
}


@st.composite
def subjects(draw: st.DrawFn) -> dict[str, Any]:
    keys = draw(st.lists(st.sampled_from(sorted(_KEY_VALUES)), unique=True, max_size=4))
    return {key: draw(st.sampled_from(_KEY_VALUES[key])) for key in keys}


def _accepted_by_the_model(model: type[DisclosureRequest], body: dict[str, Any]) -> bool:
    try:
        model.from_body(json.dumps(body).encode())
    except ValidationError:
        return False
    return True


@pytest.fixture(scope="module")
def request_validator(document: dict[str, Any]) -> jsonschema_rs.Validator:
    return validator(document, component("DisclosureRequest"))


@given(subject=subjects())
def test_schema_and_validation_agree_on_the_identity_keys(
    gateway: Deployment, request_validator: jsonschema_rs.Validator, subject: dict[str, Any]
) -> None:
    body = {
        "purpose": "ct-assessment",
        "case_ref": "CTI-2026-0042",
        "justification": "j",
        "subject": subject,
    }
    model = gateway.runtime.request_model
    assert request_validator.is_valid(body) is _accepted_by_the_model(model, body), subject


@given(
    case_ref=st.one_of(
        st.sampled_from(["CTI-2026-0042", "09/123456-26", "A999900997-2026-1", "09/1234567-26"]),
        st.from_regex(r"[A-Z0-9/-]{1,70}", fullmatch=True),
        st.text(max_size=MAX_CHARS + 2),
    )
)
def test_schema_and_validation_agree_on_case_references(
    gateway: Deployment, request_validator: jsonschema_rs.Validator, case_ref: str
) -> None:
    body = {
        "purpose": "ct-assessment",
        "case_ref": case_ref,
        "justification": "j",
        "subject": {"bsn": "999990019"},
    }
    model = gateway.runtime.request_model
    assert request_validator.is_valid(body) is _accepted_by_the_model(model, body), case_ref


# -- what a partner may ask --------------------------------------------------------------


def test_every_partners_purpose_list_fits_the_declared_schema(
    gateway: Deployment, document: dict[str, Any]
) -> None:
    operation = document["paths"]["/v1/purposes"]["get"]
    ok = operation["responses"]["200"]
    schema = validator(document, ok["content"]["application/json"]["schema"])
    for partner in gateway.runtime.catalog.partners:
        with gateway.client(partner) as client:
            response = client.get("/v1/purposes")
        errors = [e.message for e in schema.iter_errors(response.json())]
        assert not errors, (partner, errors)
        for name, header in ok["headers"].items():
            value = response.headers[name]
            assert validator(document, header["schema"]).is_valid(value), (name, value)
    # The example in the document is one too, and the 304 has headers but no body.
    (example,) = document["components"]["schemas"]["PurposeList"]["examples"]
    assert schema.is_valid(example)
    assert "content" not in operation["responses"]["304"]
    assert set(operation["responses"]["304"]["headers"]) == {"ETag", "Cache-Control"}
    # The description says this is a guide and the policy decides.
    assert "the policy still decides each request" in operation["description"]


def test_a_justification_is_optional_in_the_schema_and_the_model(
    gateway: Deployment, document: dict[str, Any], request_validator: jsonschema_rs.Validator
) -> None:
    # Whether a purpose needs one is the register's to say (requires_justification): the
    # policy refuses a request without one for such a purpose, so the API accepts it.
    schema = document["components"]["schemas"]["DisclosureRequest"]
    assert "justification" not in schema["required"]
    assert schema["properties"]["justification"]["maxLength"] == 2000
    assert "requires" in schema["properties"]["justification"]["description"]
    body = {
        "purpose": "ct-assessment",
        "case_ref": "CTI-2026-0042",
        "subject": {"bsn": "999990019"},
    }
    model = gateway.runtime.request_model
    for justification in (None, "", "   ", "x" * 2000, "x" * 2001, 7):
        given = body if justification is None else body | {"justification": justification}
        accepted = _accepted_by_the_model(model, given)
        assert request_validator.is_valid(given) is accepted, justification
        assert accepted is (justification is None or justification in ("", "   ", "x" * 2000))


# -- the answers: real problem documents fit the declared ones -----------------------------


def _answers(gateway: Deployment) -> Iterator[httpx.Response]:
    body = {
        "purpose": "tf-screening",
        "case_ref": "CTI-2026-0042",
        "justification": "test",
        "subject": {"bsn": "999990019"},
    }
    with gateway.client("politie") as client:
        yield client.post("/v1/disclosures", json=body)  # 403 purpose-denied, with reasons
        yield client.post("/v1/disclosures", json=body | {"case_ref": "nope"})  # 422 + errors
        yield client.post("/v1/disclosures", json=body | {"datasets": ["x/y"]})  # 422
        yield client.post("/v1/disclosures", content=b"x", headers={"content-type": "text/plain"})
        yield client.post(
            "/v1/disclosures",
            content=b"{" + b" " * 70_000 + b"}",
            headers={"content-type": "application/json"},
        )
        yield client.get("/v1/nothing")  # 404
        yield client.delete("/v1/disclosures")  # 405
    with gateway.client(GHOST) as client:
        yield client.get("/openapi.json")  # 403 unknown-peer
        yield client.get("/v1/purposes")


def test_the_gateways_problem_documents_fit_the_declared_ones(
    gateway: Deployment, document: dict[str, Any]
) -> None:
    seen = set()
    for response in _answers(gateway):
        assert response.headers["content-type"] == PROBLEM_JSON
        schema = validator(document, response_schema(response.status_code))
        errors = [e.message for e in schema.iter_errors(response.json())]
        assert not errors, (response.status_code, response.text, errors)
        seen.add(response.json()["type"].rsplit(":", 1)[1])
    assert seen >= {"purpose-denied", "invalid-request", "unknown-dataset", "not-found"}


def test_a_problem_type_outside_its_status_does_not_fit(document: dict[str, Any]) -> None:
    schema = validator(document, response_schema(422))
    problem = gateway.errors.InvalidRequest("x").problem()
    assert schema.is_valid(problem)
    assert not schema.is_valid(gateway.errors.UnknownPeer().problem())  # a 403's type
    assert not schema.is_valid(problem | {"reasons": ["only purpose-denied has these"]})
    assert not schema.is_valid(problem | {"title": "another title"})
    assert not schema.is_valid(problem | {"input": "an echoed value"})
