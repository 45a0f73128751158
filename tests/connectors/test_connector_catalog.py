"""The connector catalog: the real deployment loads, and every bad file is named."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from gateway.connectors import Catalog, Connector
from gateway.errors import ConfigurationError, UnknownDataset
from gateway.vocabulary import (
    FIELD_TYPES,
    SUBJECT_KEYS,
    CertificatePin,
    FactSpec,
    FileConnectorConfig,
    HttpConnectorConfig,
    OAuth2Config,
)
from tests.connectors.connector_support import REPO, TEST_FIELDS, partner_doc, write_partners

CONNECTORS = REPO / "connectors"


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return Catalog.load(CONNECTORS, tmp_path)


# ---------------------------------------------------------------------------
# The demo deployment
# ---------------------------------------------------------------------------


def test_real_deployment_loads(catalog: Catalog) -> None:
    assert len(catalog.partners) >= 6
    assert set(catalog.partners) >= {"aivd", "dji", "fiu", "ind", "kmar", "politie", "nctv"}
    assert set(catalog.datasets) == {
        "aivd/ct-signals",
        "dji/detention",
        "fiu/transactions",
        "ind/residence",
        "kmar/border-crossings",
        "kmar/passenger-records",
        "politie/incidents",
    }
    for partner in catalog.partners.values():
        assert partner.roles
        for name, spec in partner.datasets.items():
            assert catalog.datasets[spec.id] is spec
            assert spec.id == f"{partner.id}/{name}"
            assert spec.provider == partner.id
            assert isinstance(spec.connector, FileConnectorConfig)
            for key in spec.identity_keys:
                assert set(key) <= set(spec.fields) & set(SUBJECT_KEYS)


def test_policy_view_has_names_and_categories_only(catalog: Catalog) -> None:
    view = catalog.datasets["ind/residence"].policy_view()
    assert set(view) == {"id", "provider", "domain", "fields", "identity_keys"}
    assert view["id"] == "ind/residence"
    assert view["provider"] == "ind"
    assert view["domain"] == "immigration"
    assert view["fields"]["bsn"] == {"type": "string", "category": "identifier"}
    assert view["fields"]["address"] == {"type": "address", "category": "address"}
    assert view["identity_keys"] == [["bsn"], ["v_number"], ["name", "date_of_birth"]]
    # A fresh, JSON-shaped structure each time: callers may not mutate the catalog.
    view["fields"].clear()
    assert catalog.datasets["ind/residence"].policy_view()["fields"]


def test_purpose_register_names_only_catalogued_datasets_and_fields(catalog: Catalog) -> None:
    register = yaml.safe_load((REPO / "policies" / "register.yaml").read_text("utf-8"))
    for purpose in register["purposes"].values():
        for dataset_id, entry in purpose["datasets"].items():
            spec = catalog.dataset(dataset_id)
            assert set(entry["field_ops"]) <= set(spec.fields), dataset_id


def test_specs_are_read_only(catalog: Catalog) -> None:
    spec = catalog.datasets["dji/detention"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.domain = "police"  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.fields["extra"] = spec.fields["bsn"]  # type: ignore[index]
    with pytest.raises(TypeError):
        catalog.datasets["x/y"] = spec  # type: ignore[index]


def test_connector_is_built_once_and_unknown_dataset_refused(catalog: Catalog) -> None:
    first = catalog.connector("ind/residence")
    assert isinstance(first, Connector)
    assert catalog.connector("ind/residence") is first
    assert first.spec is catalog.datasets["ind/residence"]
    with pytest.raises(UnknownDataset):
        catalog.connector("ind/nothing")


def test_http_connector_config_is_parsed(tmp_path: Path) -> None:
    doc = partner_doc(
        connector={
            "kind": "http",
            "url": "https://provider.example/api/records",
            "timeout_s": 1,
            "verify": "pki/provider-ca.pem",
            "oauth2": {
                "token_url": "https://provider.example/oauth/token",
                "client_id": "doelpoort",
                "client_secret_env": "PROVIDER_SECRET",
                "scope": "records:read",
            },
        }
    )
    catalog = Catalog.load(write_partners(tmp_path / "c", doc), tmp_path)
    connector = catalog.datasets["provider/records"].connector
    assert connector == HttpConnectorConfig(
        url="https://provider.example/api/records",
        timeout_s=1.0,
        verify=PurePosixPath("pki/provider-ca.pem"),
        oauth2=OAuth2Config(
            token_url="https://provider.example/oauth/token",
            client_id="doelpoort",
            client_secret_env="PROVIDER_SECRET",
            scope="records:read",
        ),
    )


def test_http_defaults(tmp_path: Path) -> None:
    doc = partner_doc(connector={"kind": "http", "url": "https://provider.example/records"})
    catalog = Catalog.load(write_partners(tmp_path / "c", doc), tmp_path)
    connector = catalog.datasets["provider/records"].connector
    assert isinstance(connector, HttpConnectorConfig)
    assert (connector.timeout_s, connector.verify, connector.oauth2) == (2.0, True, None)
    assert connector.allow_plain_http_loopback is False


def _http(url: str, token_url: str | None = None, **settings: Any) -> dict[str, Any]:
    connector: dict[str, Any] = {"kind": "http", "url": url, **settings}
    if token_url is not None:
        connector["oauth2"] = {
            "token_url": token_url,
            "client_id": "gw",
            "client_secret_env": "PROVIDER_SECRET",
        }
    return connector


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/records",
        "http://127.20.30.40/records",  # all of 127.0.0.0/8
        "http://[::1]:8080/records",
        "http://localhost:8080/records",
        "http://LOCALHOST/records",
    ],
)
def test_plain_http_to_loopback_is_allowed_when_the_catalog_says_so(
    tmp_path: Path, url: str
) -> None:
    doc = partner_doc(connector=_http(url, url + "/token", allow_plain_http_loopback=True))
    catalog = Catalog.load(write_partners(tmp_path / "c", doc), tmp_path)
    connector = catalog.datasets["provider/records"].connector
    assert isinstance(connector, HttpConnectorConfig)
    assert connector.allow_plain_http_loopback is True


@pytest.mark.parametrize(
    ("connector", "problem"),
    [
        # The attack: records and the subject's keys in clear across a network.
        pytest.param(
            _http("http://provider.example/records"), "url: plain http:// is refused", id="remote"
        ),
        pytest.param(
            _http("http://provider.example/records", allow_plain_http_loopback=True),
            "url: plain http:// is refused",
            id="remote-even-when-allowed",
        ),
        pytest.param(
            _http("http://10.1.2.3/records", allow_plain_http_loopback=True),
            "url: plain http:// is refused",
            id="private-address",
        ),
        pytest.param(
            _http("http://127.0.0.1/records"),
            "url: plain http:// to a loopback host needs allow_plain_http_loopback: true",
            id="loopback-not-said",
        ),
        pytest.param(
            _http("https://provider.example/records", "http://provider.example/token"),
            "oauth2.token_url: plain http:// is refused",
            id="token-url",  # the client secret goes there
        ),
        pytest.param(
            _http("https://provider.example/records", "http://127.0.0.1/token"),
            "oauth2.token_url: plain http:// to a loopback host needs",
            id="token-url-loopback-not-said",
        ),
        pytest.param(
            _http("http://localhost.provider.example/r", allow_plain_http_loopback=True),
            "url: plain http:// is refused",
            id="looks-like-localhost",
        ),
        pytest.param(
            _http("http://[::ffff:127.0.0.1]/records", allow_plain_http_loopback=True),
            "url: plain http:// is refused",
            id="ipv4-mapped",
        ),
        pytest.param(
            _http("http://127.1/records", allow_plain_http_loopback=True),
            "url: plain http:// is refused",
            id="short-form",
        ),
        pytest.param(
            _http("http://0.0.0.0/records", allow_plain_http_loopback=True),
            "url: plain http:// is refused",
            id="any-address",
        ),
    ],
)
def test_plain_http_is_a_start_up_error(
    tmp_path: Path, connector: dict[str, Any], problem: str
) -> None:
    directory = write_partners(tmp_path / "c", partner_doc(connector=connector))
    with pytest.raises(ConfigurationError) as caught:
        Catalog.load(directory, tmp_path)
    assert "provider.yaml" in str(caught.value)
    assert problem in str(caught.value)


DIGEST = "0123456789abcdef" * 4


def test_certificate_pins_are_parsed(tmp_path: Path) -> None:
    doc = partner_doc()
    colons = ":".join(DIGEST.upper()[i : i + 2] for i in range(0, 64, 2))
    doc["certificates"] = [{"sha256": colons}, {"spki_sha256": DIGEST}]
    catalog = Catalog.load(write_partners(tmp_path / "c", doc), tmp_path)
    assert catalog.partners["provider"].certificates == (
        CertificatePin("sha256", DIGEST),
        CertificatePin("spki_sha256", DIGEST),
    )


def test_a_partner_pins_nothing_by_default(catalog: Catalog) -> None:
    assert all(partner.certificates == () for partner in catalog.partners.values())


def test_one_certificate_is_pinned_for_one_partner_only(tmp_path: Path) -> None:
    first, second = partner_doc("first"), partner_doc("second")
    first["certificates"] = [{"sha256": DIGEST}]
    second["certificates"] = [{"sha256": DIGEST.upper()}]
    with pytest.raises(ConfigurationError, match=r"second\.yaml: sha256 .* pinned for 'first'"):
        Catalog.load(write_partners(tmp_path / "c", first, second), tmp_path)


def test_vocabularies_match_the_readme(catalog: Catalog) -> None:
    readme = (CONNECTORS / "README.md").read_text("utf-8")
    for word in (*FIELD_TYPES, *catalog.vocabulary.domains, *catalog.vocabulary.categories):
        assert f"`{word}`" in readme, word
    assert "`vocabulary.yaml`" in readme


# ---------------------------------------------------------------------------
# The vocabulary (connectors/vocabulary.yaml)
# ---------------------------------------------------------------------------


def test_the_demo_vocabulary(catalog: Catalog) -> None:
    vocabulary = catalog.vocabulary
    assert set(vocabulary.domains) == {
        "intelligence",
        "police",
        "financial",
        "immigration",
        "border",
        "detention",
        "passenger",
    }
    assert vocabulary.sensitive_categories == {"special-category", "criminal"}
    assert all(term.description for term in vocabulary.categories.values())
    # Every name a demo dataset uses is the vocabulary's, and the vocabulary is no partner.
    for spec in catalog.datasets.values():
        assert spec.domain in vocabulary.domains
        assert {f.category for f in spec.fields.values()} <= set(vocabulary.categories)
    assert "vocabulary" not in catalog.partners


def test_a_deployment_names_its_own_domains_and_categories(tmp_path: Path) -> None:
    directory = tmp_path / "c"
    directory.mkdir()
    (directory / "vocabulary.yaml").write_text(
        yaml.safe_dump(
            {
                "domains": {"tax": {"description": "Tax returns"}},
                "categories": {
                    "identifier": {"description": "ids"},
                    "identity": {"description": "names"},
                    "address": {"description": "addresses"},
                    "indicator": {"description": "flags"},
                    "financial": {"description": "money"},
                    "health": {"description": "GDPR art. 9", "sensitive": True},
                },
            }
        ),
        "utf-8",
    )
    fields = {**TEST_FIELDS, "diagnosis": {"type": "string", "category": "health"}}
    write_partners(directory, partner_doc(domain="tax", fields=fields))
    catalog = Catalog.load(directory, tmp_path)
    assert catalog.datasets["provider/records"].domain == "tax"
    assert catalog.vocabulary.sensitive_categories == {"health"}
    # ...and the demo's words are not this deployment's.
    write_partners(directory, partner_doc(domain="police"))
    with pytest.raises(
        ConfigurationError,
        match=r"provider\.yaml: datasets\.records\.domain: unknown domain 'police' \(known: tax\)",
    ):
        Catalog.load(directory, tmp_path)


def _vocabulary(**change: object) -> dict[str, object]:
    return {
        "domains": {"police": {"description": "x"}},
        "categories": {"x": {"description": "x"}},
    } | change


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        pytest.param(None, "not found: the catalog declares its domains and", id="absent"),
        pytest.param([], "must be a mapping with domains and categories", id="not-a-mapping"),
        pytest.param(
            {"domains": {"x": {"description": "x"}}},
            "categories: Field required",
            id="no-categories",
        ),
        pytest.param(
            _vocabulary(domains={}),
            "domains: Dictionary should have at least 1 item",
            id="empty",
        ),
        pytest.param(
            _vocabulary(domains={"Police": {"description": "x"}}),
            "domains.Police.[key]",
            id="bad-name",
        ),
        pytest.param(
            _vocabulary(domains={"police": {}}),
            "domains.police.description: Field required",
            id="no-description",
        ),
        pytest.param(
            _vocabulary(domains={"police": {"description": "x", "sensitive": True}}),
            "domains.police.sensitive: Extra inputs",
            id="sensitive-domain",
        ),
        pytest.param(
            _vocabulary(categories={"x": {"description": "x", "sensitive": "yes"}}),
            "categories.x.sensitive",
            id="sensitive-not-a-boolean",
        ),
    ],
)
def test_a_bad_vocabulary_is_a_configuration_error(
    tmp_path: Path, document: object, problem: str
) -> None:
    directory = tmp_path / "c"
    directory.mkdir()
    if document is not None:
        (directory / "vocabulary.yaml").write_text(yaml.safe_dump(document), "utf-8")
    write_partners(directory, partner_doc())
    if document is None:
        (directory / "vocabulary.yaml").unlink()
    with pytest.raises(ConfigurationError) as caught:
        Catalog.load(directory, tmp_path)
    assert "vocabulary.yaml" in str(caught.value)
    assert problem in str(caught.value)


# ---------------------------------------------------------------------------
# Subject facts
# ---------------------------------------------------------------------------


def test_the_demo_facts(catalog: Catalog) -> None:
    assert catalog.facts == {
        "no_lawful_residence": FactSpec(
            "no_lawful_residence", "ind/residence", "lawful_residence", (False,)
        ),
        "terrorism_conviction": FactSpec(
            "terrorism_conviction",
            "dji/detention",
            "conviction_type",
            ("terrorist offence", "preparing a terrorist offence", "terrorist financing"),
        ),
    }
    assert catalog.datasets["ind/residence"].facts == {
        "no_lawful_residence": catalog.facts["no_lawful_residence"]
    }
    assert catalog.datasets["kmar/border-crossings"].facts == {}


def test_a_fact_holds_when_some_record_has_a_listed_value() -> None:
    fact = FactSpec("no_lawful_residence", "ind/residence", "lawful_residence", (False,))
    assert fact.holds([{"lawful_residence": True}, {"lawful_residence": False}])
    assert not fact.holds([{"lawful_residence": True}])
    assert not fact.holds([])  # an unknown subject: false, like an ineligible one
    assert not fact.holds([{"lawful_residence": None}, {"other": False}])
    # Compared as the field's type: 0 is no false, 1 no true.
    assert not fact.holds([{"lawful_residence": 0}])
    flagged = FactSpec("flagged", "p/d", "score", (1,))
    assert flagged.holds([{"score": 1.0}])
    assert not flagged.holds([{"score": True}])


def _with_facts(facts: dict[str, Any]) -> Any:
    return lambda d: _dataset(d).__setitem__("facts", facts)


FACTS_INVALID: list[tuple[str, Any, str]] = [
    (
        "fact-undeclared-field",
        _with_facts({"flag": {"field": "flagd", "true_if": [True]}}),
        "datasets.records.facts.flag: field 'flagd' is not a field of the dataset",
    ),
    (
        "fact-address-field",
        _with_facts({"lives": {"field": "address", "true_if": [{"municipality": "Breda"}]}}),
        "a fact cannot compare address values",
    ),
    (
        "fact-boolean-as-text",
        _with_facts({"flag": {"field": "flagged", "true_if": ["true"]}}),
        "facts.flag: true_if.0 is not a boolean, as field 'flagged' is",
    ),
    (
        "fact-integer-as-boolean",
        _with_facts({"high": {"field": "score", "true_if": [7, True]}}),
        "facts.high: true_if.1 is not a integer",
    ),
    (
        "fact-text-as-number",
        _with_facts({"half": {"field": "ratio", "true_if": ["0.5"]}}),
        "true_if.0 is not a number",
    ),
    (
        "fact-bad-date",
        _with_facts({"born": {"field": "date_of_birth", "true_if": ["1980-02-30"]}}),
        "true_if.0 is not a date, as field 'date_of_birth' is (quote dates",
    ),
    (
        "fact-null",
        _with_facts({"named": {"field": "name", "true_if": [None]}}),
        "true_if.0 is not a string",
    ),
    (
        "fact-repeated-value",
        _with_facts({"flag": {"field": "flagged", "true_if": [True, True]}}),
        "true_if repeats a value",
    ),
    (
        "fact-no-values",
        _with_facts({"flag": {"field": "flagged", "true_if": []}}),
        "facts.flag.true_if: List should have at least 1 item",
    ),
    (
        "fact-bad-name",
        _with_facts({"Flag": {"field": "flagged", "true_if": [True]}}),
        "facts.Flag.[key]",
    ),
    (
        "fact-unknown-key",
        _with_facts({"flag": {"field": "flagged", "true_if": [True], "when": "now"}}),
        "facts.flag.when: Extra inputs",
    ),
]


@pytest.mark.parametrize(
    ("change", "problem"), [pytest.param(c, p, id=i) for i, c, p in FACTS_INVALID]
)
def test_invalid_fact(tmp_path: Path, change: Any, problem: str) -> None:
    directory = write_partners(tmp_path / "c", _edit(change), names=["provider.yaml"])
    with pytest.raises(ConfigurationError) as caught:
        Catalog.load(directory, tmp_path)
    assert "provider.yaml" in str(caught.value)
    assert problem in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_fact_of_every_comparable_type_is_accepted(tmp_path: Path) -> None:
    facts = {
        "flag": {"field": "flagged", "true_if": [True]},
        "high": {"field": "score", "true_if": [7, 8]},
        "half": {"field": "ratio", "true_if": [0.5, 1]},
        "born": {"field": "date_of_birth", "true_if": ["1980-04-01"]},
        "named": {"field": "name", "true_if": ["Sam Fictief-9001"]},
    }
    directory = write_partners(tmp_path / "c", _edit(_with_facts(facts)))
    catalog = Catalog.load(directory, tmp_path)
    assert set(catalog.facts) == set(facts)
    assert catalog.facts["half"].true_if == (0.5, 1)


def test_a_fact_name_is_declared_once_in_the_whole_catalog(tmp_path: Path) -> None:
    first, second = partner_doc("first"), partner_doc("second")
    for doc in (first, second):
        _dataset(doc)["facts"] = {"flag": {"field": "flagged", "true_if": [True]}}
    with pytest.raises(
        ConfigurationError,
        match=r"second\.yaml: datasets\.records\.facts\.flag: fact 'flag' is declared by"
        r" first/records as well",
    ):
        Catalog.load(write_partners(tmp_path / "c", first, second), tmp_path)


# ---------------------------------------------------------------------------
# Validation errors: each names the file and the problem
# ---------------------------------------------------------------------------


def _dataset(doc: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = doc["datasets"]["records"]
    return result


def _edit(change: Any) -> dict[str, Any]:
    doc = copy.deepcopy(partner_doc())
    change(doc)
    return doc


INVALID: list[tuple[str, Any, str]] = [
    (
        "unknown-type",
        lambda d: _dataset(d)["fields"].__setitem__(
            "score", {"type": "float", "category": "indicator"}
        ),
        "fields.score.type",
    ),
    (
        "unknown-category",
        lambda d: _dataset(d)["fields"].__setitem__(
            "score", {"type": "integer", "category": "gossip"}
        ),
        "fields.score.category",
    ),
    ("unknown-domain", lambda d: _dataset(d).__setitem__("domain", "tax"), "domain"),
    (
        "identity-key-undeclared",
        lambda d: _dataset(d)["fields"].pop("iban"),
        "undeclared field 'iban'",
    ),
    (
        "identity-key-not-a-subject-key",
        lambda d: _dataset(d).__setitem__("identity_keys", [["score"]]),
        "identity_keys.0.0",
    ),
    (
        "identity-key-wrong-type",
        lambda d: _dataset(d)["fields"].__setitem__(
            "iban", {"type": "integer", "category": "identifier"}
        ),
        "must be of type string or date",
    ),
    (
        "identity-key-repeated",
        lambda d: _dataset(d).__setitem__("identity_keys", [["bsn"], ["bsn"]]),
        "declared twice",
    ),
    (
        "identity-key-empty",
        lambda d: _dataset(d).__setitem__("identity_keys", [[]]),
        "identity_keys.0",
    ),
    (
        "no-identity-keys",
        lambda d: _dataset(d).__setitem__("identity_keys", []),
        "identity_keys",
    ),
    ("no-fields", lambda d: _dataset(d).__setitem__("fields", {}), "fields"),
    ("unknown-key", lambda d: d.__setitem__("owner", "someone"), "owner: Extra inputs"),
    (
        "unknown-field-key",
        lambda d: _dataset(d)["fields"]["bsn"].__setitem__("pii", True),
        "fields.bsn.pii",
    ),
    ("missing-name", lambda d: d.pop("name"), "name: Field required"),
    (
        "pin-both-digests",
        lambda d: d.__setitem__("certificates", [{"sha256": "a" * 64, "spki_sha256": "b" * 64}]),
        "exactly one of sha256 and spki_sha256",
    ),
    (
        "pin-no-digest",
        lambda d: d.__setitem__("certificates", [{}]),
        "exactly one of sha256 and spki_sha256",
    ),
    (
        "pin-not-hex",
        lambda d: d.__setitem__("certificates", [{"sha256": "z" * 64}]),
        "certificates.0.sha256",
    ),
    (
        "pin-too-short",
        lambda d: d.__setitem__("certificates", [{"spki_sha256": "a" * 40}]),
        "64 hex digits",
    ),
    (
        "pin-sha1",
        lambda d: d.__setitem__("certificates", [{"sha1": "a" * 40}]),
        "certificates.0.sha1",
    ),
    (
        "pin-twice",
        lambda d: d.__setitem__("certificates", [{"sha256": "a" * 64}, {"sha256": "A" * 64}]),
        "pin a certificate twice",
    ),
    ("bad-partner-id", lambda d: d.__setitem__("partner", "Provider!"), "partner"),
    ("bad-role", lambda d: d.__setitem__("roles", ["CT Infobox"]), "roles.0"),
    ("repeated-role", lambda d: d.__setitem__("roles", ["a", "a"]), "roles repeat"),
    (
        "unknown-connector-kind",
        lambda d: _dataset(d).__setitem__("connector", {"kind": "ftp", "path": "x"}),
        "connector",
    ),
    (
        "absolute-path",
        lambda d: _dataset(d).__setitem__("connector", {"kind": "file", "path": "/etc/passwd"}),
        "relative path",
    ),
    (
        "escaping-path",
        lambda d: _dataset(d).__setitem__("connector", {"kind": "file", "path": "../x.jsonl"}),
        "relative path",
    ),
    (
        "bad-url",
        lambda d: _dataset(d).__setitem__("connector", {"kind": "http", "url": "ftp://x/y"}),
        "http(s) URL",
    ),
    (
        "credentials-in-url",
        lambda d: _dataset(d).__setitem__(
            "connector", {"kind": "http", "url": "https://user:pw@x/y"}
        ),
        "credentials",
    ),
    (
        "verify-off",
        lambda d: _dataset(d).__setitem__(
            "connector", {"kind": "http", "url": "https://x/y", "verify": False}
        ),
        "cannot be switched off",
    ),
    (
        "timeout-zero",
        lambda d: _dataset(d).__setitem__(
            "connector", {"kind": "http", "url": "https://x/y", "timeout_s": 0}
        ),
        "timeout_s",
    ),
    (
        "secret-in-yaml",
        lambda d: _dataset(d).__setitem__(
            "connector",
            {
                "kind": "http",
                "url": "https://x/y",
                "oauth2": {
                    "token_url": "https://x/token",
                    "client_id": "gw",
                    "client_secret": "hunter2",
                },
            },
        ),
        "secrets never go in YAML",
    ),
    (
        "bad-secret-env-name",
        lambda d: _dataset(d).__setitem__(
            "connector",
            {
                "kind": "http",
                "url": "https://x/y",
                "oauth2": {
                    "token_url": "https://x/token",
                    "client_id": "gw",
                    "client_secret_env": "not a name",
                },
            },
        ),
        "client_secret_env",
    ),
]


@pytest.mark.parametrize(("change", "problem"), [pytest.param(c, p, id=i) for i, c, p in INVALID])
def test_invalid_partner_file(tmp_path: Path, change: Any, problem: str) -> None:
    directory = write_partners(tmp_path / "c", _edit(change), names=["provider.yaml"])
    with pytest.raises(ConfigurationError) as caught:
        Catalog.load(directory, tmp_path)
    message = str(caught.value)
    assert "provider.yaml" in message
    assert problem in message
    assert "hunter2" not in message


def test_file_name_must_match_partner_id(tmp_path: Path) -> None:
    directory = write_partners(tmp_path / "c", partner_doc("provider"), names=["other.yaml"])
    with pytest.raises(ConfigurationError, match=r"other\.yaml.*does not match the file name"):
        Catalog.load(directory, tmp_path)


def test_duplicate_partner(tmp_path: Path) -> None:
    directory = write_partners(
        tmp_path / "c",
        partner_doc("provider"),
        partner_doc("provider"),
        names=["provider.yaml", "provider.yml"],
    )
    with pytest.raises(ConfigurationError, match=r"provider\.yml: duplicate partner 'provider'"):
        Catalog.load(directory, tmp_path)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param("partner: [unclosed\n", "line", id="invalid-yaml"),
        pytest.param("partner: a\npartner: b\n", "duplicate key 'partner'", id="duplicate-key"),
        pytest.param("- just\n- a list\n", "must be a mapping", id="not-a-mapping"),
        pytest.param("", "must be a mapping", id="empty"),
        pytest.param("x: !!python/object:os.system {}\n", "provider.yaml", id="unsafe-tag"),
    ],
)
def test_unparseable_partner_file(tmp_path: Path, text: str, problem: str) -> None:
    directory = write_partners(tmp_path / "c")  # the vocabulary alone
    (directory / "provider.yaml").write_text(text, "utf-8")
    with pytest.raises(ConfigurationError) as caught:
        Catalog.load(directory, tmp_path)
    assert "provider.yaml" in str(caught.value)
    assert problem in str(caught.value)


def test_unreadable_partner_file(tmp_path: Path) -> None:
    directory = write_partners(tmp_path / "c")
    (directory / "provider.yaml").write_bytes(b"partner: \xff\xfe\n")
    with pytest.raises(ConfigurationError, match=r"provider\.yaml: cannot be read"):
        Catalog.load(directory, tmp_path)


def test_missing_or_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not found"):
        Catalog.load(tmp_path / "absent", tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigurationError, match=r"vocabulary\.yaml: not found"):
        Catalog.load(tmp_path / "empty", tmp_path)
    # The vocabulary is no partner.
    with pytest.raises(ConfigurationError, match="no partner files"):
        Catalog.load(write_partners(tmp_path / "empty"), tmp_path)
