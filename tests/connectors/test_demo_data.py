"""Synthetic demo data: valid-looking, clearly fictitious, consistent and deterministic."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.connectors import Catalog
from gateway.dev import demo_data
from gateway.dev.demo_data import bsn_is_valid, iban_is_valid
from gateway.vocabulary import FileConnectorConfig
from tests.connectors.connector_support import REPO

pytestmark = pytest.mark.anyio

NAME = re.compile(r"[A-Z][a-z]+ Fictief-\d{4}")
STREETS = {"Voorbeeldstraat", "Fictieflaan", "Proefweg", "Testplein", "Demokade"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    var_dir = tmp_path_factory.mktemp("var")
    catalog = Catalog.load(REPO / "connectors", var_dir)
    path = demo_data.generate(var_dir, catalog)
    assert path == var_dir / "demo" / "subjects.json"
    return var_dir, json.loads(path.read_text("utf-8"))


@pytest.fixture
async def catalog(generated: tuple[Path, dict[str, Any]]) -> AsyncIterator[Catalog]:
    catalog = Catalog.load(REPO / "connectors", generated[0])
    yield catalog
    await catalog.aclose()


def _records(var_dir: Path) -> dict[str, list[dict[str, Any]]]:
    catalog = Catalog.load(REPO / "connectors", var_dir)
    found = {}
    for spec in catalog.datasets.values():
        assert isinstance(spec.connector, FileConnectorConfig)
        lines = (var_dir / spec.connector.path).read_text("utf-8").splitlines()
        found[spec.id] = [json.loads(line) for line in lines]
    return found


# ---------------------------------------------------------------------------
# Check digits
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["111222333", "123456782", "999990019", "999993653"])
def test_bsn_eleven_test_accepts(value: str) -> None:
    assert bsn_is_valid(value)


@pytest.mark.parametrize(
    "value",
    ["123456789", "111222334", "12345678", "1234567820", "", "abcdefghi", "000000000",
     "\uff11" * 9, " 11122233", "11122233 "],
)  # fmt: skip
def test_bsn_eleven_test_rejects(value: str) -> None:
    assert not bsn_is_valid(value)


def test_iban_check() -> None:
    assert iban_is_valid("NL91ABNA0417164300")  # the standard example
    assert not iban_is_valid("NL92ABNA0417164300")
    assert not iban_is_valid("nl91abna0417164300")
    assert not iban_is_valid("NL91 ABNA 0417 1643 00")


# ---------------------------------------------------------------------------
# The generated data
# ---------------------------------------------------------------------------


def test_every_file_dataset_is_written(generated: tuple[Path, dict[str, Any]]) -> None:
    var_dir, _ = generated
    records = _records(var_dir)
    assert all(records.values()), [k for k, v in records.items() if not v]
    assert (var_dir / "demo" / "README.txt").read_text("utf-8").startswith("SYNTHETIC")


def test_identifiers_are_valid_and_in_fake_ranges(generated: tuple[Path, dict[str, Any]]) -> None:
    var_dir, document = generated
    seen = 0
    for records in _records(var_dir).values():
        for record in records:
            if (bsn := record.get("bsn")) is not None:
                assert bsn_is_valid(bsn), bsn
                assert bsn.startswith("9999"), bsn
                seen += 1
            if (iban := record.get("iban")) is not None:
                assert iban_is_valid(iban), iban
                assert iban[4:8] == "FICT", iban
            if (passport := record.get("passport_no")) is not None:
                assert re.fullmatch(r"XX\d{7}", passport), passport
            if (v_number := record.get("v_number")) is not None:
                assert re.fullmatch(r"99\d{8}", v_number), v_number
            if (flight := record.get("flight_no")) is not None:
                assert flight.startswith("ZZ")
    assert seen > 300
    spare = document["subjects"]["unknown_subject"]["subject"]["bsn"]
    assert bsn_is_valid(spare)
    assert spare.startswith("9999")


def test_names_and_addresses_look_synthetic(generated: tuple[Path, dict[str, Any]]) -> None:
    var_dir, document = generated
    for dataset, records in _records(var_dir).items():
        for record in records:
            if "name" in record:
                assert NAME.fullmatch(record["name"]), (dataset, record["name"])
            if (address := record.get("address")) is not None:
                assert address["street"] in STREETS
                assert address["postcode"].startswith("0")  # no Dutch postcode does
            if "facility" in record:
                assert record["facility"].startswith("PI Voorbeeld-")
    assert document["synthetic"] is True
    assert "fictitious" in document["note"]


def test_persons_are_consistent_across_datasets(generated: tuple[Path, dict[str, Any]]) -> None:
    var_dir, _ = generated
    by_bsn: dict[str, tuple[Any, Any]] = {}
    by_name: dict[str, Any] = {}
    for records in _records(var_dir).values():
        for record in records:
            if "bsn" in record and "name" in record:
                person = (record["name"], record.get("date_of_birth"))
                previous = by_bsn.setdefault(record["bsn"], person)
                assert previous[0] == person[0]
                assert None in (previous[1], person[1]) or previous[1] == person[1]
            if "name" in record and "date_of_birth" in record:
                assert (
                    by_name.setdefault(record["name"], record["date_of_birth"])
                    == (record["date_of_birth"])
                )


def test_generation_is_deterministic(tmp_path: Path) -> None:
    catalog = Catalog.load(REPO / "connectors", tmp_path)

    def snapshot(var_dir: Path, seed: int) -> dict[str, bytes]:
        demo_data.generate(var_dir, catalog, seed=seed, persons=60)
        return {p.name: p.read_bytes() for p in sorted((var_dir / "demo").iterdir())}

    first = snapshot(tmp_path / "a", 7)
    assert snapshot(tmp_path / "b", 7) == first
    assert snapshot(tmp_path / "c", 8) != first


def test_too_few_or_too_many_persons(tmp_path: Path) -> None:
    catalog = Catalog.load(REPO / "connectors", tmp_path)
    with pytest.raises(ValueError, match="at least"):
        demo_data.generate(tmp_path, catalog, persons=4)
    with pytest.raises(ValueError, match="at most"):
        demo_data.generate(tmp_path, catalog, persons=20_000)


# ---------------------------------------------------------------------------
# Showcase subjects
# ---------------------------------------------------------------------------


def test_subjects_document_shape(generated: tuple[Path, dict[str, Any]]) -> None:
    _, document = generated
    assert set(document) == {"synthetic", "note", "seed", "subjects"}
    assert document["seed"] == 2026
    subjects = document["subjects"]
    assert set(subjects) == {
        "ct_subject",
        "departure_subject",
        "lawful_resident",
        "bank_customer",
        "passenger",
        "unknown_subject",
    }
    purposes = {label: entry["purpose"] for label, entry in subjects.items()}
    assert purposes == {
        "ct_subject": "ct-assessment",
        "departure_subject": "vertrek",
        "lawful_resident": "vertrek",
        "bank_customer": "tf-screening",
        "passenger": "pnr-request",
        "unknown_subject": "ct-assessment",
    }
    assert subjects["ct_subject"]["subject"].keys() == {"bsn"}
    assert subjects["departure_subject"]["subject"].keys() == {"v_number"}
    assert subjects["bank_customer"]["subject"].keys() == {"iban"}
    assert subjects["passenger"]["subject"].keys() == {"passport_no"}
    assert set(subjects["ct_subject"]["known_to"]) >= {
        "ind/residence",
        "kmar/border-crossings",
        "politie/incidents",
        "aivd/ct-signals",
        "fiu/transactions",
    }
    assert set(subjects["departure_subject"]["known_to"]) >= {"dji/detention", "ind/residence"}


async def test_showcase_subjects_are_found_through_the_connectors(
    generated: tuple[Path, dict[str, Any]], catalog: Catalog
) -> None:
    _, document = generated
    for showcase in document["subjects"].values():
        for dataset_id in catalog.datasets:
            connector = catalog.connector(dataset_id)
            found = await connector.fetch(showcase["subject"])
            if showcase["also_known_by"]:
                found += await connector.fetch(showcase["also_known_by"])
            assert bool(found) == (dataset_id in showcase["known_to"]), dataset_id


async def test_showcase_subjects_fit_their_purpose(
    generated: tuple[Path, dict[str, Any]], catalog: Catalog
) -> None:
    subjects = generated[1]["subjects"]

    async def fetch(dataset: str, label: str) -> list[dict[str, Any]]:
        return await catalog.connector(dataset).fetch(subjects[label]["subject"])

    # vertrek requires the fact no_lawful_residence: one subject it holds for, one not.
    no_residence = catalog.facts["no_lawful_residence"]
    [residence] = await fetch("ind/residence", "departure_subject")
    assert residence["lawful_residence"] is False
    assert no_residence.holds([residence])
    [lawful] = await fetch("ind/residence", "lawful_resident")
    assert lawful["lawful_residence"] is True
    assert not no_residence.holds([lawful])
    [detention] = await fetch("dji/detention", "departure_subject")
    assert detention["v_number"] == subjects["departure_subject"]["subject"]["v_number"]
    assert "terrorist" in detention["conviction_type"]
    assert catalog.facts["terrorism_conviction"].holds([detention])
    flagged = await fetch("fiu/transactions", "bank_customer")
    assert any(t["tf_indicator"] is True for t in flagged)
    assert await fetch("kmar/passenger-records", "passenger")
    assert await fetch("ind/residence", "ct_subject")
    for dataset in catalog.datasets:
        assert await fetch(dataset, "unknown_subject") == []


def test_ensure_generates_only_when_absent(tmp_path: Path) -> None:
    catalog = Catalog.load(REPO / "connectors", tmp_path)
    path = demo_data.ensure(tmp_path, catalog)
    assert path.is_file()
    stamp = path.stat().st_mtime_ns
    subjects = path.read_bytes()
    path.write_text("{}")  # an edited file is left alone while everything is present
    assert demo_data.ensure(tmp_path, catalog) == path
    assert path.read_text() == "{}"
    (tmp_path / "demo" / "dji-detention.jsonl").unlink()
    demo_data.ensure(tmp_path, catalog)
    assert (tmp_path / "demo" / "dji-detention.jsonl").is_file()
    assert path.read_bytes() == subjects
    assert stamp <= path.stat().st_mtime_ns
