"""The real policies/ and register against the demo datasets, through the real engine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.policy import compile_bundle
from tests.policy.policy_support import (
    POLICIES,
    Decider,
    copy_policies,
    dataset_views,
    decider,
    demo_catalog,
    edit_register,
    partners,
    policy_input,
)

REGISTER = yaml.safe_load((POLICIES / "register.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def decide() -> Iterator[Decider]:
    with decider() as d:
        yield d


def register_ops(purpose: str, dataset: str) -> dict[str, str]:
    ops: dict[str, str] = REGISTER["purposes"][purpose]["datasets"][dataset]["field_ops"]
    return ops


# --- ct-assessment ---------------------------------------------------------------------


def test_ct_assessment_allows_politie_ind_residence_with_exactly_the_registers_ops(
    decide: Decider,
) -> None:
    decision = decide("politie", "ct-assessment", "ind/residence")
    assert decision.allow
    assert decision.reasons == ()
    assert dict(decision.field_ops) == register_ops("ct-assessment", "ind/residence")
    assert decision.retention_days == 365
    assert decision.legal_basis.startswith("Convenant CT Infobox")
    assert decision.policy_digest == decide.engine.digest
    assert decision.policy_digest.startswith("sha256:")
    # status_since is declared by the dataset but named by no op: it is dropped.
    assert "status_since" not in decision.field_ops


def test_fiu_transactions_are_not_covered_for_ind(decide: Decider) -> None:
    decision = decide("ind", "ct-assessment", "fiu/transactions")
    assert not decision.allow
    assert decision.reasons == ("purpose ct-assessment does not cover fiu/transactions for ind",)
    assert dict(decision.field_ops) == {}


def test_fiu_transactions_are_covered_for_politie(decide: Decider) -> None:
    decision = decide("politie", "ct-assessment", "fiu/transactions")
    assert decision.allow
    assert dict(decision.field_ops) == register_ops("ct-assessment", "fiu/transactions")


def test_purpose_not_granted_to_a_partner_without_its_role(decide: Decider) -> None:
    decision = decide("voorbeeldbank", "ct-assessment", "ind/residence")
    assert not decision.allow
    assert decision.reasons == ("purpose ct-assessment is not granted to voorbeeldbank",)
    # A denial still names the legal basis under which it was refused, for the audit log.
    assert decision.legal_basis.startswith("Convenant CT Infobox")


def test_unknown_purpose_is_denied(decide: Decider) -> None:
    decision = decide("politie", "fishing-expedition", "ind/residence")
    assert not decision.allow
    assert decision.reasons == ("purpose fishing-expedition is not in the register",)
    assert decision.legal_basis == ""


def test_dataset_the_purpose_does_not_name_is_denied(decide: Decider) -> None:
    decision = decide("politie", "ct-assessment", "dji/detention")
    assert not decision.allow
    assert decision.reasons == ("purpose ct-assessment does not cover dji/detention for politie",)


# --- identity keys and justification ---------------------------------------------------


@pytest.mark.parametrize("keys", [[], ["name"], ["date_of_birth"], ["passport_no"]])
def test_no_usable_identity_key_is_denied(decide: Decider, keys: list[str]) -> None:
    decision = decide("politie", "ct-assessment", "ind/residence", keys)
    assert not decision.allow
    assert decision.reasons == ("no identity key for ind/residence was given",)


def test_a_missing_identity_key_is_not_told_to_a_partner_the_purpose_is_not_granted_to(
    decide: Decider,
) -> None:
    # The refusal names the one reason that matters, not what the request also lacks.
    decision = decide("voorbeeldbank", "ct-assessment", "ind/residence", [])
    assert decision.reasons == ("purpose ct-assessment is not granted to voorbeeldbank",)


def test_a_missing_identity_key_is_not_told_for_a_dataset_the_grant_does_not_cover(
    decide: Decider,
) -> None:
    decision = decide("ind", "ct-assessment", "fiu/transactions", [])
    assert decision.reasons == ("purpose ct-assessment does not cover fiu/transactions for ind",)


@pytest.mark.parametrize("keys", [["bsn"], ["v_number"], ["name", "date_of_birth"]])
def test_any_fully_covered_identity_key_is_enough(decide: Decider, keys: list[str]) -> None:
    assert decide("politie", "ct-assessment", "ind/residence", keys).allow


def test_pnr_request_without_justification_is_denied(decide: Decider) -> None:
    decision = decide(
        "politie", "pnr-request", "kmar/passenger-records", ["passport_no"], justification=False
    )
    assert not decision.allow
    assert decision.reasons == ("purpose pnr-request requires a justification",)


def test_pnr_request_with_justification_releases_only_the_necessary_fields(
    decide: Decider,
) -> None:
    decision = decide("politie", "pnr-request", "kmar/passenger-records", ["passport_no"])
    assert decision.allow
    assert dict(decision.field_ops) == register_ops("pnr-request", "kmar/passenger-records")
    assert {"seat", "payment_method"}.isdisjoint(decision.field_ops)
    assert decision.retention_days == 183


# --- vertrek is not a security purpose -------------------------------------------------

SECURITY_DATASETS = ["aivd/ct-signals", "politie/incidents", "fiu/transactions"]
LAOV = [p for p, doc in partners().items() if "laov" in doc["roles"]]


@pytest.mark.parametrize("requester", LAOV)
@pytest.mark.parametrize("dataset", SECURITY_DATASETS)
def test_vertrek_never_releases_intelligence_police_or_financial_data(
    decide: Decider, requester: str, dataset: str
) -> None:
    decision = decide(requester, "vertrek", dataset)
    assert not decision.allow
    domain = dataset_views()[dataset]["domain"]
    assert f"purpose vertrek excludes {domain} data" in decision.reasons


def test_vertrek_allows_its_own_datasets(decide: Decider) -> None:
    decision = decide("dtv", "vertrek", "dji/detention", ["v_number"])
    assert decision.allow
    assert dict(decision.field_ops) == register_ops("vertrek", "dji/detention")
    assert "conviction_type" not in decision.field_ops


def _widen_vertrek(register: dict[str, Any]) -> None:
    datasets = register["purposes"]["vertrek"]["datasets"]
    datasets["aivd/ct-signals"] = {"field_ops": {"bsn": "keep", "name": "keep"}}
    datasets["fiu/transactions"] = {"field_ops": {"bsn": "pseudonymise"}}
    datasets["politie/incidents"] = {"field_ops": {"name": "keep"}}


def test_a_register_edit_cannot_widen_vertrek_to_security_datasets(tmp_path: Path) -> None:
    policies = copy_policies(tmp_path)
    edit_register(policies, _widen_vertrek)
    with decider(compile_bundle(policies, demo_catalog())) as decide:
        for requester in LAOV:
            for dataset in SECURITY_DATASETS:
                decision = decide(requester, "vertrek", dataset)
                assert not decision.allow, (requester, dataset)
                domain = dataset_views()[dataset]["domain"]
                # Both the allow-list and the deny-list (defence in depth) object.
                assert decision.reasons == (
                    f"purpose vertrek excludes {domain} data",
                    f"purpose vertrek only covers immigration and detention data;"
                    f" {dataset} is {domain} data",
                )


@pytest.mark.parametrize("op", ["keep", "pseudonymise", "exists"])
def test_a_register_edit_cannot_add_a_criminal_field_to_vertrek(tmp_path: Path, op: str) -> None:
    policies = copy_policies(tmp_path)

    def add_conviction(register: dict[str, Any]) -> None:
        ops = register["purposes"]["vertrek"]["datasets"]["dji/detention"]["field_ops"]
        ops["conviction_type"] = op

    edit_register(policies, add_conviction)
    with decider(compile_bundle(policies, demo_catalog())) as decide:
        decision = decide("dtv", "vertrek", "dji/detention", ["v_number"])
    assert not decision.allow
    assert decision.reasons == ("purpose vertrek excludes criminal data (field conviction_type)",)


def test_dropping_an_excluded_field_explicitly_is_fine(tmp_path: Path) -> None:
    policies = copy_policies(tmp_path)

    def drop_conviction(register: dict[str, Any]) -> None:
        ops = register["purposes"]["vertrek"]["datasets"]["dji/detention"]["field_ops"]
        ops["conviction_type"] = "drop"

    edit_register(policies, drop_conviction)
    with decider(compile_bundle(policies, demo_catalog())) as decide:
        decision = decide("dtv", "vertrek", "dji/detention", ["v_number"])
    assert decision.allow
    assert decision.field_ops["conviction_type"] == "drop"


# --- tf-screening: pseudonyms and the indicator only -----------------------------------


def test_tf_screening_gives_the_bank_only_pseudonyms_and_the_indicator(decide: Decider) -> None:
    decision = decide("voorbeeldbank", "tf-screening", "fiu/transactions", ["iban"])
    assert decision.allow
    assert dict(decision.field_ops) == {
        "bsn": "pseudonymise",
        "iban": "pseudonymise",
        "tf_indicator": "keep",
    }
    fields = dataset_views()["fiu/transactions"]["fields"]
    for field, op in decision.field_ops.items():
        assert op == "pseudonymise" or (op == "keep" and fields[field]["category"] == "indicator")


@pytest.mark.parametrize("op", ["keep", "mask", "mask:2", "generalise:year", "exists"])
def test_tf_screening_denies_a_register_edit_that_releases_iban_in_clear(
    tmp_path: Path, op: str
) -> None:
    policies = copy_policies(tmp_path)

    def iban_in_clear(register: dict[str, Any]) -> None:
        ops = register["purposes"]["tf-screening"]["datasets"]["fiu/transactions"]["field_ops"]
        ops["iban"] = op

    edit_register(policies, iban_in_clear)
    # generalise:year on a string is also a bad op; the policy refuses it before the
    # engine's type check would.
    with decider(compile_bundle(policies, demo_catalog())) as decide:
        decision = decide("voorbeeldbank", "tf-screening", "fiu/transactions", ["iban"])
    assert not decision.allow
    assert decision.reasons == (
        "purpose tf-screening releases identifier data only pseudonymised"
        f" (field iban has op {op})",
    )


def test_tf_screening_is_not_granted_to_police(decide: Decider) -> None:
    decision = decide("politie", "tf-screening", "fiu/transactions")
    assert decision.reasons == ("purpose tf-screening is not granted to politie",)


# --- field ops follow the dataset ------------------------------------------------------


def test_ops_for_fields_the_dataset_does_not_declare_are_left_out(decide: Decider) -> None:
    view = dict(dataset_views()["ind/residence"])
    view["fields"] = {k: v for k, v in view["fields"].items() if k != "address"}
    decision = decide("politie", "ct-assessment", "ind/residence", view=view)
    assert decision.allow
    expected = dict(register_ops("ct-assessment", "ind/residence"))
    del expected["address"]
    assert dict(decision.field_ops) == expected


def test_register_ops_for_a_field_no_dataset_has_are_left_out(tmp_path: Path) -> None:
    policies = copy_policies(tmp_path)

    def add_ghost(register: dict[str, Any]) -> None:
        ops = register["purposes"]["ct-assessment"]["datasets"]["ind/residence"]["field_ops"]
        ops["religion"] = "keep"

    edit_register(policies, add_ghost)
    with decider(compile_bundle(policies, demo_catalog())) as decide:
        decision = decide("politie", "ct-assessment", "ind/residence")
    assert decision.allow
    assert "religion" not in decision.field_ops


def _set_ind_residence_ops(ops: dict[str, str]) -> Any:
    def edit(register: dict[str, Any]) -> None:
        grant = register["purposes"]["ct-assessment"]["datasets"]["ind/residence"]
        grant["field_ops"] = ops

    return edit


@pytest.mark.parametrize(
    "ops",
    [
        pytest.param({"bsn": "drop", "name": "drop", "nationality": "drop"}, id="every-op-drop"),
        pytest.param({"nationalty": "keep", "residence_stat": "keep"}, id="misspelled-fields"),
        pytest.param({"nationalty": "keep", "bsn": "drop"}, id="misspelled-or-drop"),
    ],
)
def test_a_grant_that_releases_no_field_is_denied(tmp_path: Path, ops: dict[str, str]) -> None:
    # An allow with nothing to release would still answer [{}, {}, …]: the subject is in
    # the dataset. The policy refuses it instead.
    policies = copy_policies(tmp_path)
    edit_register(policies, _set_ind_residence_ops(ops))
    with decider(compile_bundle(policies, demo_catalog())) as decide:
        decision = decide("politie", "ct-assessment", "ind/residence")
        # Not worth saying to a requester the grant does not cover at all.
        other = decide("voorbeeldbank", "ct-assessment", "ind/residence")
    assert not decision.allow
    assert decision.reasons == ("purpose ct-assessment releases no field of ind/residence",)
    assert dict(decision.field_ops) == {}
    assert other.reasons == ("purpose ct-assessment is not granted to voorbeeldbank",)


def test_a_grant_releasing_one_field_among_drops_is_allowed(tmp_path: Path) -> None:
    policies = copy_policies(tmp_path)
    edit_register(policies, _set_ind_residence_ops({"bsn": "drop", "nationality": "keep"}))
    with decider(compile_bundle(policies, demo_catalog())) as decide:
        decision = decide("politie", "ct-assessment", "ind/residence")
    assert decision.allow
    assert dict(decision.field_ops) == {"bsn": "drop", "nationality": "keep"}


# --- malformed input -------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "action",
        "purpose",
        "requester",
        "has_justification",
        "dataset",
        "subject_keys",
        "subject_facts",
    ],
)
def test_malformed_input_is_denied(decide: Decider, key: str) -> None:
    document = policy_input("politie", "ct-assessment", "ind/residence")
    del document[key]
    decision = decide.raw(document)
    assert not decision.allow


@pytest.mark.parametrize("facts", [{"no_lawful_residence": "true"}, {"x": 1}, [], "yes"])
def test_subject_facts_other_than_booleans_make_the_input_malformed(
    decide: Decider, facts: Any
) -> None:
    document = policy_input("politie", "ct-assessment", "ind/residence")
    document["subject_facts"] = facts
    decision = decide.raw(document)
    assert not decision.allow
    assert "the policy input is malformed" in decision.reasons


def test_a_field_without_category_makes_the_input_malformed(decide: Decider) -> None:
    document = policy_input("politie", "ct-assessment", "ind/residence")
    del document["dataset"]["fields"]["nationality"]["category"]
    decision = decide.raw(document)
    assert not decision.allow
    assert "the policy input is malformed" in decision.reasons


def test_another_action_is_denied(decide: Decider) -> None:
    document = policy_input("politie", "ct-assessment", "ind/residence")
    document["action"] = "match"
    decision = decide.raw(document)
    assert decision.reasons == ("only the disclose action is decided by the disclosure policy",)


# --- every combination of the demo -----------------------------------------------------


def test_no_allowed_demo_decision_breaks_a_purpose_constraint(decide: Decider) -> None:
    allowed = 0
    for purpose, spec in REGISTER["purposes"].items():
        excluded_categories = set(spec.get("excluded_categories", []))
        excluded_domains = set(spec.get("excluded_domains", []))
        allowed_domains = spec.get("allowed_domains")
        tiers = [spec.get(k) for k in ("clear_categories", "reduced_categories")]
        pseudonym = spec.get("pseudonym_categories")
        lists_categories = any(t is not None for t in [*tiers, pseudonym])
        for requester in partners():
            for dataset, view in dataset_views().items():
                keys = view["identity_keys"][0]
                decision = decide(requester, purpose, dataset, keys)
                if not decision.allow:
                    assert decision.reasons
                    assert dict(decision.field_ops) == {}
                    continue
                allowed += 1
                assert view["domain"] not in excluded_domains
                assert allowed_domains is None or view["domain"] in allowed_domains
                assert set(roles_of(requester)) & set(spec["requester_roles"])
                for field, op in decision.field_ops.items():
                    category = view["fields"][field]["category"]
                    name = op.split(":")[0]
                    assert name == "drop" or category not in excluded_categories
                    if not lists_categories or name == "drop":
                        continue
                    if category in (spec.get("clear_categories") or []):
                        continue
                    if category in (spec.get("reduced_categories") or []):
                        assert name in {"pseudonymise", "mask", "generalise"}
                    else:
                        assert category in (pseudonym or [])
                        assert name == "pseudonymise"
    assert allowed > 10


def roles_of(partner: str) -> list[str]:
    found: list[str] = partners()[partner]["roles"]
    return found
