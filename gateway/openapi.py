"""The OpenAPI document (``/openapi.json``): the contract, built from what enforces it.

Nothing in it is written twice. The routes come from the app; the request schema from
the deployment's request model (`gateway.api_models.request_model`: the register's
case_ref formats), so the document and the validation cannot disagree; the dataset ids
from the connector catalog; one request example per purpose of the register; and the
problem types from the error tree (`gateway.errors`): every class a partner can meet,
with its status, title and the meaning its line in the tree's drawing gives it. A route
added to the app without its responses declared below does not get a document: building
it raises, and the tests notice.

The document says what the gateway answers to a schema-driven client, and the
schemathesis test (tests/test_contract_fuzzing.py) holds the gateway to it over mutual
TLS: no 5xx, every status, content type and body as declared.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel

import gateway.errors
from gateway.api_models import (
    BSN_DESCRIPTION,
    DisclosureRequest,
    DisclosureResponse,
    FieldError,
    Health,
    JwkSet,
    PurposeList,
    Readiness,
)
from gateway.case_refs import CaseRefFormat
from gateway.errors import (
    ConfigurationError,
    ConnectorError,
    DoelpoortError,
    EscrowUnavailable,
    InvalidRequest,
    OperatorError,
    PolicyError,
    PurposeDenied,
    VerificationError,
)
from gateway.ids import MAX_SEQ
from gateway.policy.register import Register
from gateway.settings import Settings
from gateway.vocabulary import DatasetSpec

PROBLEM_JSON = "application/problem+json"
SECURITY_SCHEME = "partnerCertificate"

# Raised at start-up or by the DPO's offline tools, never sent to a partner.
_NEVER_SENT: tuple[type[DoelpoortError], ...] = (ConfigurationError, VerificationError)
# Reported inside a 200 as one dataset's `error` (the dataset withheld), never as the
# response's status. A policy error is both: per dataset when an op fails on a record,
# the whole response (503) when a decision fails.
_PER_DATASET_ONLY: tuple[type[DoelpoortError], ...] = (
    ConnectorError,
    OperatorError,
    EscrowUnavailable,
)
_PER_DATASET: tuple[type[DoelpoortError], ...] = (*_PER_DATASET_ONLY, PolicyError)
# The members a problem document carries beyond RFC 9457's four (gateway/app.py).
_EXTRA_MEMBERS: Mapping[type[DoelpoortError], str] = {
    PurposeDenied: "reasons",
    InvalidRequest: "errors",
}


@dataclass(frozen=True)
class ProblemType:
    """One problem type a partner can meet: ``urn:doelpoort:problem:<code>``."""

    error: type[DoelpoortError]
    meaning: str
    #: The response status it comes with; None: only ever inside a dataset's result.
    status: int | None
    #: Whether it can be one dataset's ``error`` inside a 200.
    per_dataset: bool

    @property
    def uri(self) -> str:
        return gateway.errors.PROBLEM_TYPE_PREFIX + self.error.code


def problem_types() -> list[ProblemType]:
    """Every problem type a partner can meet, in the order of the error tree's drawing."""
    meanings = _drawn_meanings()
    # The tree is what gateway.errors exports (tests/test_errors.py holds the two
    # together), not every subclass that exists: a test's own would join it otherwise.
    exported = (getattr(gateway.errors, name) for name in gateway.errors.__all__)
    tree = [c for c in exported if isinstance(c, type) and issubclass(c, DoelpoortError)]
    order = list(meanings)
    tree.sort(key=lambda c: order.index(c.__name__) if c.__name__ in order else len(order))
    return [
        ProblemType(
            error=error,
            meaning=meanings.get(error.__name__) or error.title,
            status=None if issubclass(error, _PER_DATASET_ONLY) else error.status,
            per_dataset=issubclass(error, _PER_DATASET),
        )
        for error in tree
        if not issubclass(error, _NEVER_SENT)
    ]


# One line of the drawing: the tree's prefix, a class name, an optional status, and what
# it means (tests/test_errors.py holds the drawing to the classes).
_DRAWN = re.compile(
    r"^\s*[│├└─ ]*(?P<name>[A-Z][A-Za-z]+)\s+(?:[0-9x/]+(?::|\s)\s*)?(?P<meaning>.*)$"
)


def _drawn_meanings() -> dict[str, str]:
    """Class name → what the drawing in gateway/errors.py says it means."""
    doc = gateway.errors.__doc__ or ""  # none under `python -OO`: titles stand in
    start = doc.find("    DoelpoortError")
    meanings: dict[str, str] = {}
    for line in doc[start:].splitlines() if start >= 0 else ():
        match = _DRAWN.match(line)
        if match is None:
            break
        meanings[match["name"]] = match["meaning"].removesuffix("(audit)").strip()
    return meanings


# -- operations ---------------------------------------------------------------------

# The transport itself answers any request whose bytes are not HTTP (400) or whose head
# is too large (431), before a route is chosen (gateway/transport/tls.py).
_TRANSPORT = (400, 431)
_PEER = (401, 403)  # a revoked certificate; one of no configured partner


@dataclass(frozen=True)
class _Operation:
    description: str
    ok: Mapping[int, tuple[str, dict[str, Any]] | None]  # status → (media type, schema)|no body
    problems: tuple[int, ...]
    #: Response headers of every ``ok`` status: name → schema (each one always sent).
    headers: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    parameters: tuple[dict[str, Any], ...] = ()


def _ref(model: type[BaseModel] | str) -> dict[str, str]:
    name = model if isinstance(model, str) else model.__name__
    return {"$ref": f"#/components/schemas/{name}"}


_COUNT: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": MAX_SEQ}
_BASE64 = {"type": "string", "contentEncoding": "base64"}

# The proofs' answers (gateway/dpo/proofs.py): plain JSON Schema, no model behind them.
_AUDIT_SCHEMAS: Mapping[str, dict[str, Any]] = {
    "AuditEntry": {
        "type": "object",
        "description": "One stored audit entry, as hashed: its leaf is seq || prev || body.",
        "required": ["seq", "prev", "body"],
        "additionalProperties": False,
        "properties": {"seq": _COUNT, "prev": _BASE64, "body": _BASE64},
    },
    "InclusionProof": {
        "type": "object",
        "required": [
            "seq",
            "size",
            "leaf_index",
            "leaf_hash",
            "entry",
            "inclusion_proof",
            "checkpoint",
        ],
        "additionalProperties": False,
        "properties": {
            "seq": _COUNT,
            "size": _COUNT,
            "leaf_index": {"type": "integer", "minimum": 0},
            "leaf_hash": _BASE64,
            "entry": _ref("AuditEntry"),
            "inclusion_proof": {"type": "array", "items": _BASE64},
            "checkpoint": {"type": "string", "description": "The signed checkpoint note."},
        },
    },
    "ConsistencyProof": {
        "type": "object",
        "required": ["from", "to", "consistency_proof", "from_checkpoint", "to_checkpoint"],
        "additionalProperties": False,
        "properties": {
            "from": _COUNT,
            "to": _COUNT,
            "consistency_proof": {"type": "array", "items": _BASE64},
            "from_checkpoint": {"type": "string"},
            "to_checkpoint": {"type": "string"},
        },
    },
}

_OPERATIONS: Mapping[tuple[str, str], _Operation] = {
    ("post", "/v1/disclosures"): _Operation(
        "Ask for information about one subject for one purpose. A configured partner's"
        " certificate only. 403 purpose-denied when the purpose is not granted or every"
        " dataset is denied (with the reasons); every decision is in the audit log before"
        " the answer leaves.",
        {200: ("application/json", _ref(DisclosureResponse))},
        (*_TRANSPORT, *_PEER, 413, 415, 422, 503),
    ),
    ("get", "/v1/purposes"): _Operation(
        "The purposes this partner (the certificate's) is granted, in register order: per"
        " purpose its legal basis, retention and whether a request must carry a"
        " justification; per dataset the purpose covers for this partner, its provider,"
        " the identity keys a `subject` can use and the op the register grants on each"
        " field (a field not named is never released); and the formats a `case_ref` may"
        " take. Derived from the purpose register and the connector catalog, and about"
        " this partner only: no purpose it is not granted, no dataset the register"
        " narrows to other partners. **A guide, not a decision**: the policy still"
        " decides each request, and may deny or reduce what is listed here. An empty"
        " `purposes` list: no purpose is granted to this partner. A configured partner's"
        " certificate only. `ETag` changes with the answer (and so with the policy set):"
        " send it back in `If-None-Match` to get a 304 while nothing changed.",
        {
            200: ("application/json", _ref(PurposeList)),
            304: None,
        },
        (*_TRANSPORT, *_PEER),
        headers={
            "ETag": {"type": "string", "pattern": '^"[0-9a-f]{64}"$'},
            "Cache-Control": {"const": "private, no-cache"},
        },
        parameters=(
            {
                "name": "If-None-Match",
                "in": "header",
                "required": False,
                "description": "An `ETag` of an earlier answer: 304 if it is still the answer.",
                "schema": {"type": "string"},
            },
        ),
    ),
    ("get", "/v1/audit/checkpoint"): _Operation(
        "The audit log's latest signed checkpoint: a C2SP signed note (origin, tree size,"
        " base64 root hash; the log key's Ed25519 signature line), followed by the"
        " cosignature lines (c2sp.org/tlog-cosignature) of the witnesses that vouched for"
        " it. Any configured partner's or the DPO's certificate. 404 while the log holds"
        " no checkpoint.",
        {200: ("text/plain", {"type": "string"})},
        (*_TRANSPORT, *_PEER, 404, 503),
    ),
    ("get", "/v1/audit/proof/{seq}"): _Operation(
        "Audit entry `seq` (its sequence number, `prev` and body, base64) with its RFC 9162"
        " inclusion proof in the tree of the stored checkpoint of `size` entries (the"
        " latest by default), and that checkpoint with its cosignatures. The leaf hash is"
        " SHA-256(0x00 || seq as 8 bytes big-endian || prev || body). Only to the partner"
        " whose request the entry records, and to the DPO: to anyone else, and for an"
        " entry that does not exist, the same 404. 404 as well for a `size` with no stored"
        " checkpoint, or one the entry is not in.",
        {200: ("application/json", _ref("InclusionProof"))},
        (*_TRANSPORT, *_PEER, 404, 422, 503),
        parameters=(
            {
                "name": "seq",
                "in": "path",
                "required": True,
                "description": "The entry's sequence number (`audit_seq` in a receipt).",
                "schema": _COUNT,
            },
            {
                "name": "size",
                "in": "query",
                "required": False,
                "description": "The size of a stored checkpoint; default: the latest.",
                "schema": _COUNT,
            },
        ),
    ),
    ("get", "/v1/audit/consistency"): _Operation(
        "The RFC 9162 consistency proof that the stored checkpoint of `from` entries is a"
        " prefix of the one of `to` entries (the latest by default), with both"
        " checkpoints. Any configured partner's or the DPO's certificate. 422 when `from`"
        " exceeds `to`; 404 for a size with no stored checkpoint.",
        {200: ("application/json", _ref("ConsistencyProof"))},
        (*_TRANSPORT, *_PEER, 404, 422, 503),
        parameters=(
            {
                "name": "from",
                "in": "query",
                "required": True,
                "description": "The size of the smaller stored checkpoint.",
                "schema": _COUNT,
            },
            {
                "name": "to",
                "in": "query",
                "required": False,
                "description": "The size of the larger stored checkpoint; default: the latest.",
                "schema": _COUNT,
            },
        ),
    ),
    ("get", "/.well-known/jwks.json"): _Operation(
        "The keys that verify receipts (the `jws` of a disclosure), current and retired."
        " A configured partner's or the DPO's certificate.",
        {200: ("application/json", _ref(JwkSet))},
        (*_TRANSPORT, *_PEER),
    ),
    ("get", "/healthz"): _Operation(
        "Liveness. Any certificate of the partner CA.",
        {200: ("application/json", _ref(Health))},
        _TRANSPORT,
    ),
    ("get", "/readyz"): _Operation(
        "Readiness of the policy engine and the audit store: 503 (with the same body,"
        " not a problem document) while either cannot serve. Any certificate of the"
        " partner CA.",
        {
            200: ("application/json", _ref(Readiness)),
            503: ("application/json", _ref(Readiness)),
        },
        _TRANSPORT,
    ),
    ("get", "/openapi.json"): _Operation(
        "This document. A configured partner's or the DPO's certificate.",
        {200: ("application/json", {"type": "object"})},
        (*_TRANSPORT, *_PEER),
    ),
}


# -- the document -------------------------------------------------------------------


def openapi_document(
    app: FastAPI,
    *,
    server_url: str,
    request_model: type[DisclosureRequest],
    register: Register,
    datasets: Mapping[str, DatasetSpec],
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``app`` as this deployment serves it."""
    types = problem_types()
    paths: dict[str, dict[str, Any]] = {}
    for route in api_routes(app):
        if not route.include_in_schema:
            continue
        for method in sorted(m.lower() for m in route.methods or ()):
            operation = _OPERATIONS.get((method, route.path))
            if operation is None:
                raise LookupError(
                    f"{method.upper()} {route.path} has no contract: declare its responses"
                    " in gateway/openapi.py"
                )
            paths.setdefault(route.path, {})[method] = _operation(route, operation)
    paths["/v1/disclosures"]["post"]["requestBody"] = _request_body(register, datasets)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": app.title,
            "version": app.version,
            "summary": app.summary,
            "description": _description(types, register),
        },
        "servers": [{"url": server_url, "description": "this gateway"}],
        "paths": paths,
        "components": {
            "schemas": _schemas(request_model, datasets, types),
            "responses": {str(s): _problem_response(s, types) for s in _problem_statuses(types)},
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "mutualTLS",
                    "description": (
                        "Every connection presents a client certificate issued by the"
                        " partner CA (no certificate, another CA's or one revoked before"
                        " start-up: the handshake fails, no HTTP status). The partner is"
                        " the certificate's SAN URI `urn:doelpoort:partner:<id>` and"
                        " nothing the request says; a certificate of no configured partner"
                        " gets 403 unknown-peer, one revoked since start-up 401."
                    ),
                }
            },
        },
    }


def api_routes(app: FastAPI) -> list[APIRoute]:
    """Every route of the app, those of included routers too (FastAPI keeps an included
    router as one entry of `app.routes`, its routes inside)."""
    return [
        context.original_route
        for context in iter_route_contexts(app.routes)
        if isinstance(context.original_route, APIRoute)
    ]


def server_url(settings: Settings, bound: object) -> str:
    """Where partners reach this gateway: ``DOELPOORT_PUBLIC_URL``, else the listener's
    own address (``bound`` is the ASGI scope's ``server``: the port of port 0)."""
    if settings.public_url is not None:
        return settings.public_url
    if settings.proxy_socket is not None or settings.host in ("0.0.0.0", "::"):  # noqa: S104
        # Not an address a partner can use: relative to wherever the document was fetched.
        return "/"
    port = settings.port
    if port == 0 and isinstance(bound, tuple | list) and len(bound) == 2:
        port = int(bound[1])
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return f"https://{host}:{port}"


def _operation(route: APIRoute, operation: _Operation) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, body in operation.ok.items():
        response: dict[str, Any] = {"description": HTTPStatus(status).phrase}
        if operation.headers:
            response["headers"] = {
                name: {"required": True, "schema": schema}
                for name, schema in operation.headers.items()
            }
        if body is not None:
            media_type, schema = body
            response["content"] = {media_type: {"schema": schema}}
        responses[str(status)] = response
    for status in operation.problems:
        responses[str(status)] = {"$ref": f"#/components/responses/{status}"}
    described: dict[str, Any] = {
        "operationId": route.name,
        "summary": route.summary,
        "description": operation.description,
        "security": [{SECURITY_SCHEME: []}],
    }
    if operation.parameters:
        described["parameters"] = list(operation.parameters)
    described["responses"] = dict(sorted(responses.items()))
    return described


def _problem_statuses(types: Sequence[ProblemType]) -> list[int]:
    # Every status a problem document comes with: 404 and 405 too, which answer a path
    # or method no operation has. Not 500: that is a bug, and the fuzzing test fails on it.
    return sorted({t.status for t in types if t.status is not None and t.status != 500})


def _problem_response(status: int, types: Sequence[ProblemType]) -> dict[str, Any]:
    these = [t for t in types if t.status == status]
    return {
        "description": f"{HTTPStatus(status).phrase}: "
        + "; ".join(f"`{t.error.code}` ({t.meaning})" for t in these),
        "content": {
            PROBLEM_JSON: {
                "schema": {
                    "$ref": "#/components/schemas/Problem",
                    "properties": {
                        "status": {"const": status},
                        "type": {"enum": [t.uri for t in these]},
                    },
                }
            }
        },
    }


def _schemas(
    request_model: type[DisclosureRequest],
    datasets: Mapping[str, DatasetSpec],
    types: Sequence[ProblemType],
) -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    answers = (DisclosureResponse, PurposeList, JwkSet, Health, Readiness, FieldError)
    for model in (request_model, *answers):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    # A dataset the catalog does not hold is refused (422 unknown-dataset): name those it does.
    request = schemas[request_model.__name__]
    listed = request["properties"]["datasets"]["anyOf"][0]
    listed["items"]["enum"] = sorted(datasets)
    schemas.update(_AUDIT_SCHEMAS)
    schemas["Problem"] = _problem_schema(types)
    schemas["DatasetError"]["oneOf"] = [
        {
            "title": t.error.code,
            "description": t.meaning,
            "properties": {"type": {"const": t.uri}, "title": {"const": t.error.title}},
        }
        for t in types
        if t.per_dataset
    ]
    return dict(sorted(schemas.items()))


def _problem_schema(types: Sequence[ProblemType]) -> dict[str, Any]:
    """RFC 9457 problem details; one branch per problem type ties type, title and status."""
    branches = []
    for t in types:
        if t.status is None:
            continue
        member = _EXTRA_MEMBERS.get(t.error)
        branch: dict[str, Any] = {
            "title": t.error.code,
            "description": t.meaning,
            "properties": {
                "type": {"const": t.uri},
                "title": {"const": t.error.title},
                "status": {"const": t.status},
                # Only purpose-denied carries reasons, only invalid-request errors.
                "reasons": member == "reasons",
                "errors": member == "errors",
            },
        }
        if member == "reasons":
            branch["required"] = ["reasons"]
        branches.append(branch)
    return {
        "type": "object",
        "description": (
            "RFC 9457 problem details. `type` is `urn:doelpoort:problem:<code>`; each"
            " code's meaning is one branch of `oneOf` and a row of the table in the"
            " document's description. `detail` names fields, datasets and conditions,"
            " never an identifier or a value."
        ),
        "required": ["type", "title", "status", "detail"],
        "additionalProperties": False,
        "properties": {
            "type": {"type": "string", "format": "uri"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "reasons": {
                "type": "array",
                "items": {"type": "string"},
                "description": "purpose-denied only: why each refused dataset was refused",
            },
            "errors": {
                "type": "array",
                "items": _ref(FieldError),
                "description": "invalid-request only: where the body broke the schema",
            },
        },
        "oneOf": branches,
    }


# -- the request body and its examples ----------------------------------------------

# One synthetic value per identity key, for the examples: no one's. The BSN is in the
# 9999xxxxx test range and passes the eleven-test; the IBAN has a valid check and the
# non-existent bank code FICT; the passport number starts with XX, as the demo's do.
_SYNTHETIC: Mapping[str, str] = {
    "bsn": "999990019",
    "v_number": "9900000017",
    "passport_no": "XX0000017",
    "iban": "NL52FICT0000000017",
    "name": "Alex Fictief-0017",
    "date_of_birth": "1990-01-17",
}


def _request_body(register: Register, datasets: Mapping[str, DatasetSpec]) -> dict[str, Any]:
    formats = register.case_ref_formats
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": _ref(DisclosureRequest.__name__),
                "examples": {
                    name: {
                        "summary": purpose.title,
                        # Every format of the register shows up in some example.
                        "value": _example(name, register, datasets, formats[i % len(formats)]),
                    }
                    for i, (name, purpose) in enumerate(register.purposes.items())
                },
            }
        },
    }


def _example(
    purpose: str,
    register: Register,
    datasets: Mapping[str, DatasetSpec],
    case_ref_format: CaseRefFormat,
) -> dict[str, Any]:
    """A request for ``purpose`` by an identity key its first dataset is found by, one
    the purpose releases in some form (so the example reads like a real request)."""
    subject_keys: tuple[str, ...] = ("bsn",)
    for dataset_id, grant in register.purposes[purpose].datasets.items():
        spec = datasets.get(dataset_id)
        if spec is None or not spec.identity_keys:
            continue
        released = [key for key in spec.identity_keys if set(key) <= set(grant.field_ops)]
        subject_keys = (released or list(spec.identity_keys))[0]
        break
    return {
        "purpose": purpose,
        "case_ref": case_ref_format.example,
        "justification": (
            f"Synthetic example for {purpose}: why this request is necessary and"
            " proportionate in this case"
        ),
        "subject": {key: _SYNTHETIC[key] for key in subject_keys},
    }


# -- the description ----------------------------------------------------------------


def _description(types: Sequence[ProblemType], register: Register) -> str:
    rows = "\n".join(
        f"| `{t.uri}` | {t.status if t.status is not None else '—'}"
        f" | {'yes' if t.per_dataset else ''} | {t.error.title} | {t.meaning} |"
        for t in types
    )
    formats = "\n".join(
        f"- `{f.name}`: `{f.pattern}`, e.g. `{f.example}`" for f in register.case_ref_formats
    )
    return f"""\
Purpose-bound, minimised, signed and logged disclosures between counter-terrorism
partners. Every connection is mutual TLS with a certificate of the partner CA; who asks is
the certificate's partner, never anything in the request.

**Identity keys** (`subject`): at least one of `bsn`, `v_number`, `passport_no`, `iban`,
or `name` together with `date_of_birth` (a name alone is refused, and so is a date of birth
alone). A key is a string when given; leave out a key you do not give (null is refused).
`bsn`: {BSN_DESCRIPTION}

**Case references** (`case_ref`) take one of this deployment's formats, matched whole:

{formats}

and, whatever the format, at most 64 printable ASCII characters with no run of more than
six digits: a case reference names a case, never a person.

**Errors** are `application/problem+json` (RFC 9457). A path the gateway does not serve is
404 `not-found`; a method a path does not allow is 405 `method-not-allowed` with `Allow`.
Problem types (`status` —: only as one dataset's `error` inside a 200; *per dataset*: can
be one dataset's `error`):

| type | status | per dataset | title | meaning |
|---|---|---|---|---|
{rows}
"""
