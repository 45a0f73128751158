"""The purpose register loader: strict, so a typo cannot quietly widen a purpose."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.case_refs import DEFAULT_FORMATS
from gateway.connectors.catalog import Catalog
from gateway.errors import ConfigurationError
from gateway.policy import Register
from tests.policy.policy_support import POLICIES, dataset_views

RAW: dict[str, Any] = yaml.safe_load((POLICIES / "register.yaml").read_text(encoding="utf-8"))
TIER_KEYS = ("clear_categories", "reduced_categories", "pseudonym_categories")


@pytest.fixture
def register() -> Register:
    return Register.load(POLICIES / "register.yaml")


def test_the_real_register_loads(register: Register) -> None:
    # What each demo purpose grants and refuses is said by the Rego tests
    # (policies/doelpoort/*_test.rego); here only that it loads.
    assert register.purposes


def test_every_dataset_a_purpose_names_is_in_its_allowed_domains(register: Register) -> None:
    # Otherwise the register names a dataset its own allow-list refuses: a dead entry
    # that someone will "fix" by widening the allow-list.
    views = dataset_views()
    for purpose in register.purposes.values():
        if purpose.allowed_domains is None:
            continue
        for dataset in purpose.datasets:
            assert views[dataset]["domain"] in purpose.allowed_domains, (purpose.name, dataset)


def test_every_domain_and_category_of_the_vocabulary_may_be_named(catalog: Catalog) -> None:
    # Names are checked against the catalog's vocabulary (connectors/vocabulary.yaml);
    # the demo connectors (read here as plain YAML) use nothing else.
    domains, categories = catalog.vocabulary.domains, catalog.vocabulary.categories
    for view in dataset_views().values():
        assert view["domain"] in domains
        assert {f["category"] for f in view["fields"].values()} <= set(categories)
    raw = copy.deepcopy(RAW)
    raw["purposes"]["ct-assessment"].update(
        allowed_domains=list(domains), excluded_categories=list(categories)
    )
    loaded = Register.from_mapping(raw)
    loaded.check_against(catalog)
    assert loaded.purposes["ct-assessment"].allowed_domains == tuple(domains)
    assert loaded.purposes["ct-assessment"].excluded_categories == tuple(categories)


def test_as_data_spells_out_every_default(register: Register) -> None:
    data = register.as_data()
    pnr = data["purposes"]["pnr-request"]
    assert pnr["excluded_domains"] == []
    assert pnr["pseudonym_categories"] is None
    assert pnr["requires_justification"] is True
    ct = data["purposes"]["ct-assessment"]
    for key in ("allowed_domains", *TIER_KEYS):
        assert ct[key] is None  # absent: no constraint, told apart from [] by the policy
    assert ct["excluded_categories"] == ["special-category"]
    assert data["purposes"]["vertrek"]["excluded_domains"] == [
        "intelligence",
        "police",
        "financial",
    ]
    grants = data["purposes"]["ct-assessment"]["datasets"]
    assert "requesters" not in grants["ind/residence"]
    assert grants["fiu/transactions"]["requesters"] == ["fiod", "politie", "aivd", "nctv", "om"]
    assert yaml.safe_load(yaml.safe_dump(data)) == data  # plain data


def test_covered_datasets(register: Register) -> None:
    politie = ["ct-infobox", "pnr-competent-authority"]
    assert register.covered_datasets("ct-assessment", "politie", politie) == [
        "ind/residence",
        "kmar/border-crossings",
        "politie/incidents",
        "aivd/ct-signals",
        "fiu/transactions",
    ]
    # IND holds the role but neither narrowed dataset names it.
    assert register.covered_datasets("ct-assessment", "ind", ["ct-infobox", "laov"]) == [
        "ind/residence",
        "kmar/border-crossings",
        "politie/incidents",
    ]
    assert register.covered_datasets("ct-assessment", "voorbeeldbank", ["fec-obliged-entity"]) == []
    assert register.covered_datasets("no-such-purpose", "politie", politie) == []
    assert register.covered_datasets("tf-screening", None, None) == ["fiu/transactions"]


def test_requires_justification_defaults_to_true() -> None:
    raw = copy.deepcopy(RAW)
    del raw["purposes"]["vertrek"]["requires_justification"]
    assert Register.from_mapping(raw).purposes["vertrek"].requires_justification is True


def _broken(edit: Any) -> dict[str, Any]:
    raw = copy.deepcopy(RAW)
    edit(raw["purposes"])
    return raw


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda p: p["vertrek"].update(excluded_domain=["police"]),
            "^purpose vertrek: excluded_domain: unknown key$",
        ),
        (
            lambda p: p["vertrek"]["datasets"]["dji/detention"].update(ops={}),
            "^purpose vertrek, dataset dji/detention: ops: unknown key$",
        ),
        (lambda p: p["vertrek"].pop("legal_basis"), "^purpose vertrek: legal_basis is required$"),
        (
            lambda p: p["vertrek"].update(retention_days=0),
            "vertrek: retention_days: Input should be greater than 0",
        ),
        (
            lambda p: p["vertrek"].update(retention_days="forever"),
            "vertrek: retention_days: Input should be a valid integer",
        ),
        (
            lambda p: p["vertrek"].update(retention_days=10**15),
            "retention_days: Input should be less than or equal to 36500",
        ),
        (
            lambda p: p["vertrek"].update(requester_roles=[]),
            "vertrek: requester_roles: List should have at least 1 item",
        ),
        (
            lambda p: p["vertrek"].update(requires_justification="yes"),
            "vertrek: requires_justification: Input should be a valid boolean",
        ),
        (
            lambda p: p["vertrek"].update(excluded_categories="criminal"),
            "vertrek: excluded_categories: Input should be a valid list",
        ),
        (
            lambda p: p["vertrek"].update(legal_basis="  "),
            "vertrek: legal_basis: must be non-empty text",
        ),
        (
            lambda p: p["vertrek"]["datasets"]["dji/detention"]["field_ops"].update(name="reveal"),
            "no operator implements op 'reveal'",
        ),
        (
            lambda p: p["vertrek"]["datasets"]["dji/detention"]["field_ops"].update(name=3),
            r"dataset dji/detention: field_ops\.name: Input should be a valid string",
        ),
        (lambda p: p.update(broken=[]), "^purpose broken: must be a mapping$"),
        # Names follow gateway.ids, as the partner API does: a purpose that loads can be
        # asked for, and a role or requester that loads can be held by a partner.
        (lambda p: p.update({"CT-Assessment": p["vertrek"]}), "invalid purpose 'CT-Assessment'"),
        (lambda p: p.update({"1st-purpose": p["vertrek"]}), "invalid purpose '1st-purpose'"),
        (
            lambda p: p["vertrek"].update(requester_roles=["Laov"]),
            r"vertrek: requester_roles\.0: invalid role 'Laov'",
        ),
        (
            lambda p: p["vertrek"]["datasets"]["dji/detention"].update(requesters=["DT&V"]),
            r"dataset dji/detention: requesters\.0: invalid requester 'DT&V'",
        ),
        (
            lambda p: p["vertrek"].update(allowed_domains=["Immigration"]),
            r"vertrek: allowed_domains\.0: invalid domain 'Immigration'",
        ),
        (
            lambda p: p["vertrek"].update(requires_facts=["no_lawful_residence"] * 2),
            "vertrek: requires_facts: names no_lawful_residence twice",
        ),
        (
            lambda p: p["vertrek"].update(requires_facts=["No Residence"]),
            r"vertrek: requires_facts\.0: String should match pattern",
        ),
        (
            lambda p: p["vertrek"]["datasets"]["dji/detention"].update(
                requester_field_ops={"dtv": {"name": "reveal"}}
            ),
            "no operator implements op 'reveal'",
        ),
        (
            lambda p: p["vertrek"]["datasets"]["dji/detention"].update(clear_reasons={"name": " "}),
            r"dataset dji/detention: clear_reasons\.name: must be non-empty text",
        ),
        (
            lambda p: p["vertrek"].update(allowed_domains=[]),
            "vertrek: allowed_domains: Value should have at least 1 item",
        ),
        (
            lambda p: p["vertrek"].update(allowed_domains=None),
            "vertrek: allowed_domains: must be a list",
        ),
        (
            lambda p: p["vertrek"].update(allowed_domains="immigration"),
            "vertrek: allowed_domains: Input should be a valid list",
        ),
        (
            lambda p: p["tf-screening"].update(clear_categories=None),
            "tf-screening: clear_categories: must be a list",
        ),
        (
            lambda p: p["vertrek"].update(allowed_domains=["immigration", "immigration"]),
            "vertrek: allowed_domains: names immigration twice",
        ),
        (
            lambda p: p["tf-screening"].update(pseudonym_categories=["identifier", "indicator"]),
            "category indicator is in both clear_categories and pseudonym_categories",
        ),
        (
            lambda p: p["pnr-request"].update(pseudonym_categories=["identity"]),
            "category identity is in both reduced_categories and pseudonym_categories",
        ),
    ],
)
def test_a_bad_register_is_a_configuration_error(edit: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        Register.from_mapping(_broken(edit))
    assert "\n" not in caught.value.detail  # one line: `cannot start: …` prints it as is


def test_a_bad_file_names_itself(tmp_path: Path) -> None:
    path = tmp_path / "register.yaml"
    path.write_text("purposes: [\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"register\.yaml: .* at line 2$") as caught:
        Register.load(path)
    assert "\n" not in caught.value.detail  # one line: `cannot start: …` prints it as is
    path.write_text("purposes: {x: {legal_basis: y}}\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"register\.yaml: purpose x") as caught:
        Register.load(path)
    # Every problem, on one line.
    assert caught.value.detail == (
        f"{path}: purpose x: retention_days is required; purpose x: requester_roles is"
        " required; purpose x: datasets is required"
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (None, "the register must be a mapping"),
        ([], "the register must be a mapping"),
        ({}, "purposes is required"),
        ({"purposes": []}, "purposes: must be a mapping"),
        ({"purposes": {}, "purpose": {}}, "purpose: unknown key"),
    ],
)
def test_a_register_that_is_no_register(raw: object, message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Register.from_mapping(raw)
    assert caught.value.detail == message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("retention_days", True),  # strict: a boolean is no number of days
        ("retention_days", "30"),  # nor is text
        ("retention_days", 30.0),
        ("requires_justification", 1),
        ("legal_basis", 42),
        ("title", None),  # given without text: not "use the name"
        ("requester_roles", "laov"),
    ],
)
def test_types_are_never_coerced(key: str, value: object) -> None:
    raw = copy.deepcopy(RAW)
    raw["purposes"]["vertrek"][key] = value
    with pytest.raises(ConfigurationError, match=f"^purpose vertrek: {key}: "):
        Register.from_mapping(raw)


def test_a_dataset_id_follows_the_id_syntax() -> None:
    raw = copy.deepcopy(RAW)
    grants = raw["purposes"]["vertrek"]["datasets"]
    grants["DJI/detention"] = grants.pop("dji/detention")
    with pytest.raises(ConfigurationError, match=r"^purpose vertrek, dataset DJI/detention: "):
        Register.from_mapping(raw)


def test_a_title_defaults_to_the_purpose_name() -> None:
    raw = copy.deepcopy(RAW)
    del raw["purposes"]["vertrek"]["title"]
    assert Register.from_mapping(raw).purposes["vertrek"].title == "vertrek"


def test_a_key_given_twice_is_refused_not_overridden(tmp_path: Path) -> None:
    # YAML loaders keep the last value: here the second op would release the BSN in clear.
    text = (POLICIES / "register.yaml").read_text(encoding="utf-8")
    op = "          bsn: pseudonymise\n"
    assert op in text
    path = tmp_path / "register.yaml"
    path.write_text(text.replace(op, op + "          bsn: keep\n", 1), encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"register\.yaml: duplicate key 'bsn' at line"):
        Register.load(path)


# --- case_ref formats (gateway/case_refs.py) -----------------------------------------


def test_the_demo_register_names_its_case_ref_formats(register: Register) -> None:
    assert [(f.name, f.example) for f in register.case_ref_formats] == [
        ("registry-year-number", "CTI-2026-0042"),
        ("om-parketnummer", "09/123456-26"),
    ]


def test_without_case_ref_formats_the_default_format_holds() -> None:
    raw = copy.deepcopy(RAW)
    del raw["case_ref_formats"]
    assert Register.from_mapping(raw).case_ref_formats == DEFAULT_FORMATS


def _format(**change: object) -> dict[str, object]:
    return {
        "name": "om",
        "pattern": "[0-9]{2}/[0-9]{6}-[0-9]{2}",
        "example": "09/123456-26",
    } | change


@pytest.mark.parametrize(
    ("formats", "message"),
    [
        ([], "^case_ref_formats: List should have at least 1 item"),
        (None, "^case_ref_formats: Input should be a valid list"),
        ([_format(), _format()], "^case_ref_formats: names om twice$"),
        ([_format(name="OM")], r"^case_ref_formats\.0\.name: invalid case_ref format name 'OM'"),
        ([_format(shape="x")], r"^case_ref_formats\.0\.shape: unknown key$"),
        ([_format(pattern="")], r"^case_ref_formats\.0\.pattern: String should have at least"),
        # The regex engine never backtracks: what it cannot do is refused, not emulated.
        (
            [_format(pattern="(?=[0-9])[0-9/-]+")],
            r"^case_ref_formats\.0: pattern does not compile: error: look-around",
        ),
        ([_format(pattern="[0-9]{2}/[0-9]{6}-[0-9]{2")], "pattern does not compile"),
        ([_format(example="2026/123456")], "example is not an accepted case reference"),
        # Whatever a format allows, a case reference never carries a BSN-long number...
        (
            [_format(pattern="[A-Z]+-[0-9]+", example="CASE-999900997")],
            "example is not an accepted case reference: .*no run of more than 6 digits",
        ),
        # ...nor a space, a control character or another script's letters.
        (
            [_format(pattern=".+", example="Case 12")],
            "example is not an accepted case reference: .*printable ASCII without spaces",
        ),
    ],
)
def test_a_bad_case_ref_format_is_a_configuration_error(formats: object, message: str) -> None:
    raw = copy.deepcopy(RAW)
    raw["case_ref_formats"] = formats
    with pytest.raises(ConfigurationError, match=message) as caught:
        Register.from_mapping(raw)
    assert "\n" not in caught.value.detail


# --- the register against the connector catalog (checked at start-up) -----------------


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load(POLICIES.parent / "connectors", POLICIES.parent / "var")


def _grant_ops(raw: dict[str, Any], purpose: str, dataset: str) -> dict[str, str]:
    ops: dict[str, str] = raw["purposes"][purpose]["datasets"][dataset]["field_ops"]
    return ops


def test_the_demo_register_fits_the_catalog(register: Register, catalog: Catalog) -> None:
    register.check_against(catalog)


def test_a_dataset_the_catalog_lacks_is_a_configuration_error(
    catalog: Catalog,
) -> None:
    raw = copy.deepcopy(RAW)
    grants = raw["purposes"]["vertrek"]["datasets"]
    grants["dji/detentoin"] = grants.pop("dji/detention")
    with pytest.raises(
        ConfigurationError,
        match=r"^purpose vertrek, dataset dji/detentoin: the connector catalog has no such",
    ):
        Register.from_mapping(raw).check_against(catalog)


def test_a_field_the_dataset_lacks_is_a_configuration_error(
    catalog: Catalog,
) -> None:
    raw = copy.deepcopy(RAW)
    _grant_ops(raw, "ct-assessment", "ind/residence")["nationalty"] = "keep"
    with pytest.raises(
        ConfigurationError,
        match=r"^purpose ct-assessment, dataset ind/residence: field nationalty is not a field",
    ):
        Register.from_mapping(raw).check_against(catalog)


def test_a_role_no_partner_holds_is_a_configuration_error(catalog: Catalog) -> None:
    raw = copy.deepcopy(RAW)
    raw["purposes"]["tf-screening"]["requester_roles"] = ["fec-obliged-entty"]
    with pytest.raises(
        ConfigurationError,
        match=r"^purpose tf-screening: no partner of the connector catalog holds role fec-obl",
    ):
        Register.from_mapping(raw).check_against(catalog)


def test_a_requester_that_is_no_partner_is_a_configuration_error(catalog: Catalog) -> None:
    raw = copy.deepcopy(RAW)
    raw["purposes"]["ct-assessment"]["datasets"]["aivd/ct-signals"]["requesters"] = ["politei"]
    with pytest.raises(
        ConfigurationError,
        match=r"^purpose ct-assessment, dataset aivd/ct-signals: requester politei is not a",
    ):
        Register.from_mapping(raw).check_against(catalog)


@pytest.mark.parametrize(
    ("field", "op", "problem"),
    [
        ("nationality", "generalise:year", "applies to date fields, not string"),
        ("lawful_residence", "mask", "applies to string fields, not boolean"),
        ("address", "generalise:month", "applies to date fields, not address"),
    ],
)
def test_an_op_that_does_not_suit_the_field_type_is_a_configuration_error(
    catalog: Catalog, field: str, op: str, problem: str
) -> None:
    raw = copy.deepcopy(RAW)
    _grant_ops(raw, "ct-assessment", "ind/residence")[field] = op
    with pytest.raises(ConfigurationError) as caught:
        Register.from_mapping(raw).check_against(catalog)
    assert str(caught.value).startswith(
        f"purpose ct-assessment, dataset ind/residence: field {field}: "
    )
    assert problem in str(caught.value)


# Domain and category names must be the vocabulary's: a typo would otherwise allow
# nothing, exclude nothing or quietly drop a category.
@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda p: p["vertrek"].update(allowed_domains=["imigration", "detention"]),
            r"^purpose vertrek: allowed_domains\.0: unknown domain 'imigration' \(known: intel",
        ),
        (
            lambda p: p["vertrek"].update(excluded_domains=["polices"]),
            r"excluded_domains\.0: unknown domain 'polices'",
        ),
        (
            lambda p: p["vertrek"].update(excluded_categories=["crimnal"]),
            r"excluded_categories\.0: unknown category 'crimnal'",
        ),
        (
            lambda p: p["tf-screening"].update(clear_categories=["indicators"]),
            r"clear_categories\.0: unknown category 'indicators'",
        ),
        (
            lambda p: p["tf-screening"].update(pseudonym_categories=["identifiers"]),
            r"tf-screening: pseudonym_categories\.0: unknown category 'identifiers'",
        ),
        (
            lambda p: p["pnr-request"].update(reduced_categories=["identifier", "passport"]),
            r"pnr-request: reduced_categories\.1: unknown category 'passport'",
        ),
    ],
)
def test_a_name_outside_the_vocabulary_is_a_configuration_error(
    catalog: Catalog, edit: Any, message: str
) -> None:
    register = Register.from_mapping(_broken(edit))  # well-formed: the catalog decides
    with pytest.raises(ConfigurationError, match=message) as caught:
        register.check_against(catalog)
    assert "\n" not in caught.value.detail


# --- subject facts ---------------------------------------------------------------------


def test_the_demo_vertrek_requires_no_lawful_residence(register: Register) -> None:
    assert register.purposes["vertrek"].requires_facts == ("no_lawful_residence",)
    assert register.purposes["ct-assessment"].requires_facts == ()
    data = register.as_data()["purposes"]
    assert data["vertrek"]["requires_facts"] == ["no_lawful_residence"]
    assert data["ct-assessment"]["requires_facts"] == []


def test_a_fact_no_dataset_declares_is_a_configuration_error(catalog: Catalog) -> None:
    raw = copy.deepcopy(RAW)
    raw["purposes"]["vertrek"]["requires_facts"] = ["no_lawful_residense"]
    with pytest.raises(
        ConfigurationError,
        match=r"^purpose vertrek: requires_facts: fact no_lawful_residense is declared by no"
        r" dataset of the connector catalog \(facts: no_lawful_residence, terrorism_conv",
    ):
        Register.from_mapping(raw).check_against(catalog)


# --- a requester's own field ops -------------------------------------------------------


def test_the_demo_nctv_gets_no_amounts(register: Register) -> None:
    grant = register.purposes["ct-assessment"].datasets["fiu/transactions"]
    assert grant.field_ops["amount_eur"] == "keep"
    assert grant.requester_field_ops == {"nctv": {"amount_eur": "drop"}}
    data = register.as_data()["purposes"]["ct-assessment"]["datasets"]
    assert data["fiu/transactions"]["requester_field_ops"] == {"nctv": {"amount_eur": "drop"}}
    assert data["ind/residence"]["requester_field_ops"] == {}  # spelled out for the policy


@pytest.mark.parametrize(
    ("partner", "ops", "message"),
    [
        ("nctvv", {"amount_eur": "drop"}, "requester_field_ops.nctvv: nctvv is not a partner"),
        # Holds ct-infobox, but the grant is narrowed to other partners.
        ("kmar", {"amount_eur": "drop"}, "requester_field_ops.kmar: the grant does not cover"),
        # A partner without any of the purpose's roles.
        (
            "voorbeeldbank",
            {"amount_eur": "drop"},
            "requester_field_ops.voorbeeldbank: the grant does not cover",
        ),
        (
            "nctv",
            {"amount": "drop"},
            "requester_field_ops.nctv: field amount is not a field of the dataset",
        ),
        (
            "nctv",
            {"amount_eur": "generalise:year"},
            "requester_field_ops.nctv: field amount_eur: .*applies to date fields, not number",
        ),
    ],
)
def test_a_bad_requester_field_op_is_a_configuration_error(
    catalog: Catalog, partner: str, ops: dict[str, str], message: str
) -> None:
    raw = copy.deepcopy(RAW)
    grant = raw["purposes"]["ct-assessment"]["datasets"]["fiu/transactions"]
    grant["requester_field_ops"] = {partner: ops}
    with pytest.raises(
        ConfigurationError, match=f"^purpose ct-assessment, dataset fiu/transactions: {message}"
    ):
        Register.from_mapping(raw).check_against(catalog)


# --- sensitive categories in clear -----------------------------------------------------


def test_a_sensitive_field_in_clear_needs_a_reason(catalog: Catalog) -> None:
    raw = copy.deepcopy(RAW)
    grant = raw["purposes"]["ct-assessment"]["datasets"]["politie/incidents"]
    assert grant["clear_reasons"]["offence_category"]  # the demo states its reason
    del grant["clear_reasons"]
    with pytest.raises(
        ConfigurationError,
        match=r"^purpose ct-assessment, dataset politie/incidents: field offence_category is"
        r" criminal data \(a sensitive category\) released in clear \(keep\): state why in"
        r" clear_reasons\.offence_category",
    ):
        Register.from_mapping(raw).check_against(catalog)


def test_a_requesters_own_keep_of_a_sensitive_field_needs_a_reason(catalog: Catalog) -> None:
    raw = copy.deepcopy(RAW)
    grant = raw["purposes"]["ct-assessment"]["datasets"]["politie/incidents"]
    grant["field_ops"]["incident_date"] = "generalise:month"
    grant["requester_field_ops"] = {"om": {"incident_date": "keep"}}
    with pytest.raises(ConfigurationError, match=r"field incident_date is criminal data"):
        Register.from_mapping(raw).check_against(catalog)
    grant["clear_reasons"]["incident_date"] = "The prosecutor needs the exact date"
    Register.from_mapping(raw).check_against(catalog)


def test_a_reason_for_a_field_not_in_clear_is_a_configuration_error(catalog: Catalog) -> None:
    raw = copy.deepcopy(RAW)
    grant = raw["purposes"]["ct-assessment"]["datasets"]["politie/incidents"]
    grant["clear_reasons"]["incident_date"] = "stale: the op is generalise:month"
    with pytest.raises(
        ConfigurationError,
        match=r"clear_reasons\.incident_date: the grant does not release incident_date in clear",
    ):
        Register.from_mapping(raw).check_against(catalog)


def test_a_sensitive_field_reduced_needs_no_reason(catalog: Catalog) -> None:
    raw = copy.deepcopy(RAW)
    grant = raw["purposes"]["ct-assessment"]["datasets"]["politie/incidents"]
    grant["field_ops"]["offence_category"] = "exists"
    del grant["clear_reasons"]
    Register.from_mapping(raw).check_against(catalog)
