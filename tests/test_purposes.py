"""GET /v1/purposes: each partner sees what it may ask, and nothing about the others.

Over real mutual TLS against the demo deployment (its register and catalog), plus a
deployment of its own for a partner granted nothing and for a revoked certificate.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from gateway._cli import app
from tests.gateway_support import GHOST, Deployment, copy_tree, make_settings, running_gateway

PATH = "/v1/purposes"
PROBLEM_JSON = "application/problem+json"


def purposes(gateway: Deployment, partner: str) -> dict[str, Any]:
    with gateway.client(partner) as client:
        response = client.get(PATH)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    return body


def by_name(listing: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in listing["purposes"]}


def datasets_of(purpose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["id"]: d for d in purpose["datasets"]}


def strings_in(value: Any) -> Iterator[str]:
    """Every key and string value of a JSON document."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


# -- what each partner sees --------------------------------------------------------------


def test_the_bank_sees_tf_screening_on_fiu_transactions_only(gateway: Deployment) -> None:
    listing = purposes(gateway, "voorbeeldbank")
    assert listing["requester"] == "voorbeeldbank"
    (purpose,) = listing["purposes"]
    assert purpose["name"] == "tf-screening"
    assert purpose["legal_basis"].startswith("Wet ter voorkoming van witwassen")
    assert purpose["retention_days"] == 180
    assert purpose["requires_justification"] is True
    (dataset,) = purpose["datasets"]
    assert dataset == {
        "id": "fiu/transactions",
        "provider": "fiu",
        "description": gateway.runtime.catalog.datasets["fiu/transactions"].description,
        "identity_keys": [["bsn"], ["iban"]],
        "field_ops": {"bsn": "pseudonymise", "iban": "pseudonymise", "tf_indicator": "keep"},
    }


def test_the_police_see_their_purposes_with_every_dataset_narrowed_to_them(
    gateway: Deployment,
) -> None:
    listing = by_name(purposes(gateway, "politie"))
    # ct-infobox and pnr-competent-authority: not vertrek (laov), not tf-screening.
    assert list(listing) == ["ct-assessment", "pnr-request"]
    ct = datasets_of(listing["ct-assessment"])
    # aivd/ct-signals and fiu/transactions are narrowed to named partners, the police among them.
    assert list(ct) == [
        "ind/residence",
        "kmar/border-crossings",
        "politie/incidents",
        "aivd/ct-signals",
        "fiu/transactions",
    ]
    assert ct["ind/residence"]["identity_keys"] == [
        ["bsn"],
        ["v_number"],
        ["name", "date_of_birth"],
    ]
    assert ct["ind/residence"]["field_ops"]["date_of_birth"] == "generalise:year"
    assert "status_since" not in ct["ind/residence"]["field_ops"]  # never released: not listed
    assert listing["ct-assessment"]["retention_days"] == 365


def test_datasets_narrowed_to_others_are_left_out(gateway: Deployment) -> None:
    # The IND holds ct-infobox and laov, but neither narrowed dataset names it.
    listing = by_name(purposes(gateway, "ind"))
    assert list(listing) == ["ct-assessment", "vertrek"]
    assert list(datasets_of(listing["ct-assessment"])) == [
        "ind/residence",
        "kmar/border-crossings",
        "politie/incidents",
    ]
    assert list(datasets_of(listing["vertrek"])) == ["ind/residence", "dji/detention"]


def test_two_partners_see_different_lists(gateway: Deployment) -> None:
    bank, police = purposes(gateway, "voorbeeldbank"), purposes(gateway, "politie")
    assert {p["name"] for p in bank["purposes"]}.isdisjoint(p["name"] for p in police["purposes"])


def test_nothing_about_other_partners_is_listed(gateway: Deployment) -> None:
    catalog = gateway.runtime.catalog
    for partner in catalog.partners.values():
        listing = purposes(gateway, partner.id)
        text = str(listing)
        assert "requesters" not in text
        assert "roles" not in text
        # The only partners named: itself, and the providers of what it may ask.
        providers = {d["provider"] for p in listing["purposes"] for d in p["datasets"]}
        named = set(strings_in(listing)) & set(catalog.partners)
        assert named <= {partner.id, *providers}, partner.id
        # No purpose whose roles it lacks, no dataset narrowed away from it.
        register = gateway.runtime.register
        for purpose in listing["purposes"]:
            granted = register.purposes[purpose["name"]]
            assert set(granted.requester_roles) & set(partner.roles)
            for dataset in purpose["datasets"]:
                narrowed = granted.datasets[dataset["id"]].requesters
                assert narrowed is None or partner.id in narrowed


def test_the_listed_ops_are_the_ones_a_disclosure_shows(gateway: Deployment) -> None:
    # The guide and the policy's decision agree on the demo register (the policy decides).
    listing = by_name(purposes(gateway, "politie"))
    body = {
        "purpose": "ct-assessment",
        "case_ref": "CTI-2026-0042",
        "justification": "test: necessary and proportionate",
        "subject": gateway.subjects["ct_subject"],
    }
    response = gateway.disclose("politie", body)
    assert response.status_code == 200, response.text
    disclosure = response.json()["disclosure"]
    decided = {r["dataset"]: r.get("field_ops") for r in disclosure["results"]}
    listed = {d["id"]: d["field_ops"] for d in listing["ct-assessment"]["datasets"]}
    assert decided == listed
    assert purposes(gateway, "politie")["policy_digest"] == disclosure["policy_digest"]


def test_the_case_reference_formats_are_the_registers(gateway: Deployment) -> None:
    formats = purposes(gateway, "kmar")["case_ref_formats"]
    assert formats == [
        {"name": f.name, "pattern": f.pattern, "example": f.example}
        for f in gateway.runtime.register.case_ref_formats
    ]


# -- caching -----------------------------------------------------------------------------


def test_an_unchanged_list_is_a_304_for_its_etag(gateway: Deployment) -> None:
    with gateway.client("politie") as client:
        first = client.get(PATH)
        etag = first.headers["etag"]
        assert first.headers["cache-control"] == "private, no-cache"
        again = client.get(PATH, headers={"If-None-Match": etag})
        assert again.status_code == 304
        assert again.content == b""
        assert again.headers["etag"] == etag
        weak = client.get(PATH, headers={"If-None-Match": f'"other", W/{etag}'})
        assert weak.status_code == 304
        assert client.get(PATH, headers={"If-None-Match": "*"}).status_code == 304
        other = client.get(PATH, headers={"If-None-Match": '"not-this-one"'})
        assert other.status_code == 200
        assert other.content == first.content
    # Another partner's list is another answer, with another tag.
    with gateway.client("voorbeeldbank") as client:
        bank = client.get(PATH, headers={"If-None-Match": etag})
    assert bank.status_code == 200
    assert bank.headers["etag"] != etag


# -- who may ask -------------------------------------------------------------------------


def test_a_certificate_of_no_partner_is_refused(gateway: Deployment) -> None:
    with gateway.client(GHOST) as client:
        response = client.get(PATH)
    assert response.status_code == 403
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["type"] == "urn:doelpoort:problem:unknown-peer"
    with gateway.dpo_client() as client:
        response = client.get(PATH)
    assert response.status_code == 403
    assert response.json()["type"] == "urn:doelpoort:problem:unknown-peer"


NOBODY = "waarnemer"


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """The demo deployment plus a partner whose one role no purpose grants."""
    root = tmp_path_factory.mktemp("purposes")
    connectors = copy_tree("connectors", root)
    (connectors / f"{NOBODY}.yaml").write_text(
        f"partner: {NOBODY}\nname: An observer granted no purpose (synthetic)\n"
        "roles: [observer]\ndatasets: {}\n",
        encoding="utf-8",
    )
    with running_gateway(make_settings(root / "var", connectors_dir=connectors)) as deployment:
        yield deployment


def test_a_partner_granted_nothing_gets_an_empty_list(observed: Deployment) -> None:
    listing = purposes(observed, NOBODY)
    assert listing["requester"] == NOBODY
    assert listing["purposes"] == []


def test_a_revoked_partner_is_refused_and_the_refusal_logged(observed: Deployment) -> None:
    assert purposes(observed, NOBODY)["purposes"] == []
    revoke = ["pki", "revoke", NOBODY, "--var-dir", str(observed.settings.var_dir)]
    result = CliRunner().invoke(app, revoke)
    assert result.exit_code == 0, result.output
    with observed.client(NOBODY) as client:
        response = client.get(PATH)
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["type"] == "urn:doelpoort:problem:unauthenticated"
    with sqlite3.connect(Path(observed.settings.audit_db_path)) as db:
        routes = db.execute(
            "SELECT json_extract(body, '$.route') FROM entries"
            " WHERE json_extract(body, '$.kind') = 'refusal'"
            " AND json_extract(body, '$.requester') = ?",
            (NOBODY,),
        ).fetchall()
    assert (PATH,) in routes
    # Other partners are still served.
    with observed.client("politie") as client:
        assert client.get(PATH).status_code == 200


def test_no_client_certificate_fails_the_handshake(gateway: Deployment) -> None:
    with (
        httpx.Client(base_url=gateway.base_url, verify=gateway.ssl_context()) as client,
        pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)),
    ):
        client.get(PATH)
