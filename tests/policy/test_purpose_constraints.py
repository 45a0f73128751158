"""Register edits that would widen a purpose are refused by the Rego, with the real engine.

Each test copies policies/ to tmp_path, edits register.yaml the way a careless (or
hurried) register change would, compiles the copy and asks the real embedded engine. The
allow-lists (allowed_domains, and clear/reduced/pseudonym_categories) must refuse the
edit with a reason naming the dataset or the field, its category and its op.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.policy import Decision, compile_bundle
from gateway.policy.bundle import PolicyBundle
from tests.policy.policy_support import (
    Decider,
    copy_policies,
    dataset_views,
    decider,
    demo_catalog,
    edit_register,
    partners,
    real_bundle,
)

Edit = Callable[[dict[str, Any]], None]
LAOV = [p for p, doc in partners().items() if "laov" in doc["roles"]]
VERTREK_ONLY = "purpose vertrek only covers immigration and detention data"


@pytest.fixture(scope="module")
def decide() -> Iterator[Decider]:
    with decider() as d:
        yield d


def edited(tmp_path: Path, edit: Edit) -> PolicyBundle:
    policies = copy_policies(tmp_path)
    edit_register(policies, edit)
    return compile_bundle(policies, demo_catalog())


def add_dataset(purpose: str, dataset: str, field_ops: dict[str, str]) -> Edit:
    def edit(register: dict[str, Any]) -> None:
        register["purposes"][purpose]["datasets"][dataset] = {"field_ops": field_ops}

    return edit


def set_ops(purpose: str, dataset: str, **ops: str) -> Edit:
    def edit(register: dict[str, Any]) -> None:
        register["purposes"][purpose]["datasets"][dataset]["field_ops"].update(ops)

    return edit


def decide_once(bundle: PolicyBundle, *args: Any, **kwargs: Any) -> Decision:
    with decider(bundle) as d:
        return d(*args, **kwargs)


# --- vertrek: an allow-list of domains ---------------------------------------------------

KMAR_OPS = {
    "kmar/passenger-records": {"name": "keep", "route": "keep", "flight_no": "keep"},
    "kmar/border-crossings": {"name": "keep", "crossed_at": "keep", "border_post": "keep"},
}


@pytest.mark.parametrize("dataset", sorted(KMAR_OPS))
def test_a_register_edit_cannot_add_kmar_security_data_to_vertrek(
    tmp_path: Path, dataset: str
) -> None:
    bundle = edited(tmp_path, add_dataset("vertrek", dataset, KMAR_OPS[dataset]))
    domain = dataset_views()[dataset]["domain"]
    with decider(bundle) as decide:
        for requester in LAOV:
            decision = decide(requester, "vertrek", dataset, ["passport_no"])
            assert not decision.allow, requester
            assert decision.reasons == (f"{VERTREK_ONLY}; {dataset} is {domain} data",)
            assert dict(decision.field_ops) == {}


def test_the_deny_list_still_holds_when_vertreks_allow_list_is_widened(tmp_path: Path) -> None:
    def widen(register: dict[str, Any]) -> None:
        vertrek = register["purposes"]["vertrek"]
        vertrek["allowed_domains"] += ["intelligence", "police", "financial"]
        vertrek["datasets"]["politie/incidents"] = {"field_ops": {"offence_category": "keep"}}

    decision = decide_once(edited(tmp_path, widen), "dtv", "vertrek", "politie/incidents")
    assert not decision.allow
    assert decision.reasons == (
        "purpose vertrek excludes criminal data (field offence_category)",
        "purpose vertrek excludes police data",
    )


def test_vertrek_still_allows_its_own_datasets(decide: Decider) -> None:
    for dataset in ("ind/residence", "dji/detention"):
        assert decide("dtv", "vertrek", dataset, ["v_number"]).allow, dataset


def test_the_allow_list_reason_is_not_given_to_a_partner_without_the_purpose(
    decide: Decider,
) -> None:
    decision = decide("voorbeeldbank", "vertrek", "kmar/passenger-records", ["passport_no"])
    assert decision.reasons == ("purpose vertrek is not granted to voorbeeldbank",)


# --- tf-screening: pseudonymised identifiers and an indicator only -----------------------


@pytest.mark.parametrize(
    ("field", "op", "category"),
    [
        ("amount_eur", "pseudonymise", "financial"),
        ("counterparty_country", "pseudonymise", "financial"),
        ("name", "pseudonymise", "identity"),
        ("reported_on", "exists", "financial"),
        ("reported_on", "generalise:year", "financial"),
        ("amount_eur", "keep", "financial"),
        ("name", "mask", "identity"),
    ],
)
def test_tf_screening_releases_nothing_but_pseudonyms_and_the_indicator(
    tmp_path: Path, field: str, op: str, category: str
) -> None:
    bundle = edited(tmp_path, set_ops("tf-screening", "fiu/transactions", **{field: op}))
    decision = decide_once(bundle, "voorbeeldbank", "tf-screening", "fiu/transactions", ["iban"])
    assert not decision.allow
    assert decision.reasons == (
        f"purpose tf-screening does not release {category} data (field {field} has op {op})",
    )


def test_every_offending_field_is_named(tmp_path: Path) -> None:
    edit = set_ops(
        "tf-screening", "fiu/transactions", amount_eur="pseudonymise", iban="keep", name="drop"
    )
    decision = decide_once(
        edited(tmp_path, edit), "voorbeeldbank", "tf-screening", "fiu/transactions", ["iban"]
    )
    assert decision.reasons == (
        "purpose tf-screening does not release financial data"
        " (field amount_eur has op pseudonymise)",
        "purpose tf-screening releases identifier data only pseudonymised (field iban has op keep)",
    )


@pytest.mark.parametrize(
    ("field", "op"),
    [("amount_eur", "drop"), ("name", "drop"), ("bsn", "drop"), ("tf_indicator", "exists")],
)
def test_tf_screening_accepts_dropping_and_any_op_on_the_indicator(
    tmp_path: Path, field: str, op: str
) -> None:
    bundle = edited(tmp_path, set_ops("tf-screening", "fiu/transactions", **{field: op}))
    decision = decide_once(bundle, "voorbeeldbank", "tf-screening", "fiu/transactions", ["iban"])
    assert decision.allow, decision.reasons
    assert decision.field_ops[field] == op


def test_tf_screening_covers_financial_data_only(tmp_path: Path) -> None:
    # Even a pseudonym tells the bank that its customer is in the IND's records.
    bundle = edited(tmp_path, add_dataset("tf-screening", "ind/residence", {"bsn": "pseudonymise"}))
    decision = decide_once(bundle, "voorbeeldbank", "tf-screening", "ind/residence")
    assert not decision.allow
    assert decision.reasons == (
        "purpose tf-screening only covers financial data; ind/residence is immigration data",
    )


# --- pnr-request: strictly necessary passenger data --------------------------------------


@pytest.mark.parametrize(
    ("field", "op", "reason"),
    [
        ("payment_method", "keep", "does not release financial data"),
        ("payment_method", "pseudonymise", "does not release financial data"),
        ("payment_method", "exists", "does not release financial data"),
        ("name", "keep", "releases identity data only pseudonymised, masked or generalised"),
        (
            "date_of_birth",
            "keep",
            "releases identity data only pseudonymised, masked or generalised",
        ),
        (
            "passport_no",
            "keep",
            "releases identifier data only pseudonymised, masked or generalised",
        ),
        (
            "passport_no",
            "exists",
            "releases identifier data only pseudonymised, masked or generalised",
        ),
    ],
)
def test_pnr_request_refuses_more_than_the_strictly_necessary(
    tmp_path: Path, field: str, op: str, reason: str
) -> None:
    bundle = edited(tmp_path, set_ops("pnr-request", "kmar/passenger-records", **{field: op}))
    decision = decide_once(
        bundle, "politie", "pnr-request", "kmar/passenger-records", ["passport_no"]
    )
    assert not decision.allow
    assert decision.reasons == (f"purpose pnr-request {reason} (field {field} has op {op})",)


@pytest.mark.parametrize(
    ("field", "op"),
    [("name", "mask"), ("booking_ref", "drop"), ("departure_date", "generalise:month")],
)
def test_pnr_request_accepts_reduced_identities_and_travel_data(
    tmp_path: Path, field: str, op: str
) -> None:
    bundle = edited(tmp_path, set_ops("pnr-request", "kmar/passenger-records", **{field: op}))
    decision = decide_once(
        bundle, "politie", "pnr-request", "kmar/passenger-records", ["passport_no"]
    )
    assert decision.allow, decision.reasons


@pytest.mark.parametrize(
    ("dataset", "ops"),
    [
        ("politie/incidents", {"bsn": "pseudonymise", "incident_date": "generalise:month"}),
        ("kmar/border-crossings", {"bsn": "pseudonymise", "crossed_at": "keep"}),
    ],
)
def test_pnr_request_covers_passenger_records_only(
    tmp_path: Path, dataset: str, ops: dict[str, str]
) -> None:
    bundle = edited(tmp_path, add_dataset("pnr-request", dataset, ops))
    decision = decide_once(bundle, "politie", "pnr-request", dataset)
    assert not decision.allow
    domain = dataset_views()[dataset]["domain"]
    assert (
        f"purpose pnr-request only covers passenger data; {dataset} is {domain} data"
    ) in decision.reasons


def test_the_shipped_pnr_request_releases_no_seat_or_payment(decide: Decider) -> None:
    decision = decide("kmar", "pnr-request", "kmar/passenger-records", ["passport_no"])
    assert decision.allow
    assert decision.field_ops["name"] == "pseudonymise"
    assert {"seat", "payment_method"}.isdisjoint(decision.field_ops)


# --- the Rego fails closed even where the register loader would have refused -------------


def with_register_data(edit: Edit) -> PolicyBundle:
    """The real bundle with its register *data* edited, bypassing the loader's checks."""
    bundle = real_bundle()
    data = {"register": bundle.register.as_data()}
    edit(data["register"])
    return dataclasses.replace(bundle, data=data)


def test_an_empty_domain_allow_list_refuses_everything() -> None:
    def empty(register: dict[str, Any]) -> None:
        register["purposes"]["vertrek"]["allowed_domains"] = []

    decision = decide_once(with_register_data(empty), "dtv", "vertrek", "ind/residence")
    assert not decision.allow
    assert decision.reasons == (
        "purpose vertrek only covers no data; ind/residence is immigration data",
    )


def test_a_category_in_two_tiers_gets_the_stricter_rule() -> None:
    def both(register: dict[str, Any]) -> None:
        register["purposes"]["tf-screening"]["pseudonym_categories"].append("indicator")

    decision = decide_once(
        with_register_data(both), "voorbeeldbank", "tf-screening", "fiu/transactions", ["iban"]
    )
    assert not decision.allow
    assert decision.reasons == (
        "purpose tf-screening releases indicator data only pseudonymised"
        " (field tf_indicator has op keep)",
    )


@pytest.mark.parametrize("key", ["reduced_categories", "pseudonym_categories"])
def test_any_tier_list_switches_the_category_allow_list_on(key: str) -> None:
    # ct-assessment has no allow-list; giving it only a (reduced or pseudonym) list of
    # identifiers leaves every other category to be dropped.
    def only_identifiers(register: dict[str, Any]) -> None:
        register["purposes"]["ct-assessment"][key] = ["identifier"]

    decision = decide_once(
        with_register_data(only_identifiers), "politie", "ct-assessment", "ind/residence"
    )
    assert not decision.allow
    assert (
        "purpose ct-assessment does not release identity data (field name has op pseudonymise)"
        in decision.reasons
    )


# --- the shipped register: the allow-lists refuse nothing it grants ----------------------


def test_the_shipped_register_grants_exactly_what_it_names(decide: Decider) -> None:
    # Every (purpose, partner holding its role, dataset it names for that partner) is
    # allowed with exactly the register's ops; everything else is refused. So the
    # allow-lists added for the security review changed no decision of the demo.
    register = real_bundle().register
    views = dataset_views()
    allowed = 0
    for purpose in register.purposes.values():
        for requester, doc in partners().items():
            granted = set(doc["roles"]) & set(purpose.requester_roles)
            for dataset, view in views.items():
                grant = purpose.datasets.get(dataset)
                expected = (
                    bool(granted)
                    and grant is not None
                    and (grant.requesters is None or requester in grant.requesters)
                )
                decision = decide(requester, purpose.name, dataset, view["identity_keys"][0])
                assert decision.allow == expected, (purpose.name, requester, dataset)
                if expected:
                    assert grant is not None
                    allowed += 1
                    ops = {**grant.field_ops, **grant.requester_field_ops.get(requester, {})}
                    assert dict(decision.field_ops) == {
                        f: op for f, op in ops.items() if f in view["fields"]
                    }
    assert allowed == 46


# --- a requester's own field ops (requester_field_ops) ----------------------------------


def test_the_nctv_gets_no_amounts_where_other_partners_do(decide: Decider) -> None:
    nctv = decide("nctv", "ct-assessment", "fiu/transactions")
    politie = decide("politie", "ct-assessment", "fiu/transactions")
    assert nctv.allow
    assert politie.allow
    assert nctv.field_ops["amount_eur"] == "drop"
    assert politie.field_ops["amount_eur"] == "keep"
    assert {f: op for f, op in nctv.field_ops.items() if f != "amount_eur"} == {
        f: op for f, op in politie.field_ops.items() if f != "amount_eur"
    }


def test_a_requesters_own_op_is_still_judged_by_the_category_rules(tmp_path: Path) -> None:
    # The register's per-requester rule cannot release what the purpose forbids: the
    # bank getting its customers' IBAN in clear is refused like any other grant of it.
    def iban_in_clear(register: dict[str, Any]) -> None:
        grant = register["purposes"]["tf-screening"]["datasets"]["fiu/transactions"]
        grant["requester_field_ops"] = {"voorbeeldbank": {"iban": "keep"}}

    decision = decide_once(
        edited(tmp_path, iban_in_clear), "voorbeeldbank", "tf-screening", "fiu/transactions"
    )
    assert not decision.allow
    assert decision.reasons == (
        "purpose tf-screening releases identifier data only pseudonymised (field iban has op keep)",
    )
