"""The real policies/ and register through the real engine: what holds for any register.

Which purpose grants or refuses what is said by the Rego tests next to the policy
(policies/doelpoort/*_test.rego, `doelpoort policy test`), so a deployment can change its
register without editing these. What stays here: what the Rego tests cannot show (an
input key left out altogether; reasons as the gateway receives them) and properties of
every decision the register and the catalog allow.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.policy.policy_support import (
    Decider,
    dataset_views,
    decider,
    partners,
    policy_input,
    real_bundle,
)


@pytest.fixture(scope="module")
def decide() -> Iterator[Decider]:
    with decider() as d:
        yield d


def test_reasons_reach_the_gateway_as_the_policy_words_them(decide: Decider) -> None:
    # regopy's sprintf() quotes some strings in Rego tests (support_test.rego); a JSON
    # input, as the gateway gives, must not be.
    decision = decide("politie", "fishing-expedition", "ind/residence")
    assert not decision.allow
    assert decision.reasons == ("purpose fishing-expedition is not in the register",)
    assert decision.legal_basis == ""
    assert decision.policy_digest == decide.engine.digest
    assert decision.policy_digest.startswith("sha256:")


@pytest.mark.parametrize(
    "key", ["action", "purpose", "requester", "has_justification", "dataset", "subject_keys"]
)
def test_malformed_input_is_denied(decide: Decider, key: str) -> None:
    # A key left out altogether (Rego tests can only give a key a wrong value).
    document = policy_input("politie", "ct-assessment", "ind/residence")
    del document[key]
    decision = decide.raw(document)
    assert not decision.allow


def test_no_allowed_decision_breaks_a_purpose_constraint(decide: Decider) -> None:
    # Every purpose of the register, every partner and dataset of the catalog.
    register = real_bundle().register.as_data()
    allowed = 0
    for purpose, spec in register["purposes"].items():
        excluded_categories = set(spec["excluded_categories"] or [])
        excluded_domains = set(spec["excluded_domains"] or [])
        allowed_domains = spec["allowed_domains"]
        tiers = [spec[k] for k in ("clear_categories", "reduced_categories")]
        pseudonym = spec["pseudonym_categories"]
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
                assert set(partners()[requester]["roles"]) & set(spec["requester_roles"])
                for field, op in decision.field_ops.items():
                    category = view["fields"][field]["category"]
                    name = op.split(":")[0]
                    assert name == "drop" or category not in excluded_categories
                    if not lists_categories or name == "drop":
                        continue
                    if category in (spec["clear_categories"] or []):
                        continue
                    if category in (spec["reduced_categories"] or []):
                        assert name in {"pseudonymise", "mask", "generalise"}
                    else:
                        assert category in (pseudonym or [])
                        assert name == "pseudonymise"
    assert allowed > 0


def test_the_register_grants_exactly_what_it_names(decide: Decider) -> None:
    # Every (purpose, partner holding its role, dataset it names for that partner) is
    # allowed with exactly the register's ops; everything else is refused. So the
    # purpose constraints in deny.rego refuse nothing the register grants.
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
    assert allowed > 0
