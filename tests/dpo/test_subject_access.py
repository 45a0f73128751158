"""Subject access: every decision about a data subject, found by any of their identifiers
(over the running gateway, in the console, and offline with the DPO's key copies)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from audit.entry import AuditRecord
from audit.reader import AuditReader
from gateway._cli import app
from gateway.keys import SUBJECT_REF_KEY_FILE, export_subject_ref_key, load_master_key
from gateway.subject_refs import SubjectRefKey, legacy_key, legacy_key_bytes, load_subject_ref_key
from tests.audit.audit_support import make_record, open_store
from tests.gateway_support import Deployment, make_settings, running_gateway

runner = CliRunner()

BSN = "999900997"  # the synthetic ct_subject; also known by name and date of birth
V_NUMBER = "9900000001"  # what IND's records give for that subject


@dataclass(frozen=True)
class Asked:
    gateway: Deployment
    by_name: str  # disclosure id of a request made by name and date of birth
    by_bsn: str  # one made by BSN
    other: str  # one about another subject
    identity: dict[str, str]  # the subject's name and date of birth


def _disclose(gateway: Deployment, partner: str, purpose: str, subject: dict[str, str],
              datasets: list[str] | None = None) -> Any:  # fmt: skip
    body: dict[str, Any] = {
        "purpose": purpose,
        "case_ref": "CTI-2026-0777",
        "justification": "subject access test",
        "subject": subject,
    }
    if datasets is not None:
        body["datasets"] = datasets
    return gateway.disclose(partner, body)


@pytest.fixture(scope="module")
def asked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Asked]:
    settings = make_settings(tmp_path_factory.mktemp("subjects") / "var")
    with running_gateway(settings) as gateway:
        subjects = json.loads((settings.var_dir / "demo" / "subjects.json").read_text())
        identity = subjects["subjects"]["ct_subject"]["also_known_by"]
        assert gateway.subjects["ct_subject"] == {"bsn": BSN}
        by_name = _disclose(gateway, "politie", "ct-assessment", identity, ["ind/residence"])
        assert by_name.status_code == 200, by_name.text
        by_bsn = _disclose(gateway, "politie", "ct-assessment", {"bsn": BSN})
        assert by_bsn.status_code == 200, by_bsn.text
        other = _disclose(gateway, "dtv", "vertrek", gateway.subjects["departure_subject"])
        assert other.status_code == 200, other.text
        yield Asked(
            gateway,
            by_name.json()["disclosure"]["id"],
            by_bsn.json()["disclosure"]["id"],
            other.json()["disclosure"]["id"],
            identity,
        )


def _search(asked: Asked, subject: dict[str, str]) -> dict[str, Any]:
    with asked.gateway.dpo_client() as dpo:
        response = dpo.post("/dpo/api/subjects", json=subject)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    found: dict[str, Any] = response.json()
    return found


def _ids(found: dict[str, Any]) -> set[str]:
    return {r["disclosure_id"] for r in found["requests"]}


def test_a_search_by_bsn_finds_a_request_made_by_name_and_date_of_birth(asked: Asked) -> None:
    by_bsn = _search(asked, {"bsn": BSN})
    assert {asked.by_name, asked.by_bsn} <= _ids(by_bsn)
    assert asked.other not in _ids(by_bsn)
    # And the other way round, and by a key only IND's records gave.
    assert {asked.by_name, asked.by_bsn} <= _ids(_search(asked, asked.identity))
    assert asked.by_name in _ids(_search(asked, {"v_number": V_NUMBER}))
    # A namesake born on another day is someone else.
    namesake = {"name": asked.identity["name"], "date_of_birth": "1970-01-01"}
    assert _search(asked, namesake)["requests"] == []


def test_each_decision_says_to_whom_when_why_on_which_basis_and_in_which_form(
    asked: Asked,
) -> None:
    found = _search(asked, {"bsn": BSN})
    assert found["identified_by"] == ["bsn"]
    counts = found["counts"]
    assert counts["requests"] == len(found["requests"])
    assert counts["dataset_decisions"] == sum(len(r["decisions"]) for r in found["requests"])
    assert counts["dataset_decisions"] > counts["requests"]  # each is labelled for what it is
    (request,) = [r for r in found["requests"] if r["disclosure_id"] == asked.by_name]
    assert request["requester"] == "politie"
    assert request["purpose"] == "ct-assessment"
    assert request["case_ref"] == "CTI-2026-0777"
    assert request["legal_basis"]
    assert request["time"].endswith("Z")
    assert request["disclosed"] is True
    (decision,) = request["decisions"]
    assert decision["dataset"] == "ind/residence"
    assert decision["decision"] == "allow"
    forms = {r["field"]: r["form"] for r in decision["released"]}
    with AuditReader(asked.gateway.settings.audit_db_path) as reader:
        body = next(reader.iter_entries(decision["seq"])).body
    logged = AuditRecord.from_body(body)
    assert set(forms) == {f for f, op in logged.field_ops.items() if op != "drop"}
    assert forms["name"].startswith("pseudonymised")


def test_entries_hold_references_under_the_subject_key_never_identifiers(asked: Asked) -> None:
    settings = asked.gateway.settings
    key = load_subject_ref_key(settings.dpo_dir / SUBJECT_REF_KEY_FILE)  # the DPO's copy
    stored = b"".join(p.read_bytes() for p in settings.var_dir.glob("audit.sqlite3*"))
    for secret in (BSN, V_NUMBER, asked.identity["name"]):
        assert secret.encode() not in stored
    with AuditReader(settings.audit_db_path) as reader:
        records = [AuditRecord.from_body(e.body) for e in reader.iter_entries()]
    by_name = [r for r in records if r.disclosure_id == asked.by_name]
    assert {r.subject_ref_key for r in records} == {key.kid}
    # The request gave a name and date of birth; IND's record told the BSN and v-number.
    refs = set(key.refs({"bsn": BSN})) | set(key.refs({"v_number": V_NUMBER}))
    assert refs | set(key.refs(asked.identity)) <= set(by_name[0].subject_refs)
    # The pseudonyms each entry released, as references only.
    response = asked.gateway.disclose(
        "politie",
        {
            "purpose": "ct-assessment",
            "case_ref": "CTI-2026-0778",
            "justification": "subject access test",
            "subject": {"bsn": BSN},
            "datasets": ["ind/residence"],
        },
    )
    (result,) = response.json()["disclosure"]["results"]
    pseudonyms = {v for r in result["records"] for v in r.values() if str(v).startswith("psn:")}
    assert pseudonyms
    with AuditReader(settings.audit_db_path) as reader:
        entry = next(reader.iter_entries(result["audit_seq"]))
    logged = AuditRecord.from_body(entry.body)
    assert logged.pseudonym_refs == sorted(key.pseudonym_ref(p) for p in pseudonyms)
    assert not any(p.encode() in entry.body for p in pseudonyms)


def test_the_console_page_finds_the_subject_and_never_echoes_the_identifier(
    asked: Asked,
) -> None:
    with asked.gateway.dpo_client() as dpo:
        form = dpo.get("/dpo/subjects")
        assert form.status_code == 200
        assert 'method="post"' in form.text
        assert "default-src 'none'" in form.headers["content-security-policy"]
        assert dpo.get("/dpo/api/subjects").json()["access"] is None
        page = dpo.post("/dpo/subjects", data={"bsn": BSN, "format": "page"})
        assert page.status_code == 200, page.text
        assert page.headers["content-type"].startswith("text/html")
        assert asked.by_name in page.text
        assert asked.by_bsn in page.text
        assert asked.other not in page.text
        assert BSN not in page.text
        # Its download form carries the references, not the identifier.
        refs = [line.split('value="')[1].split('"')[0] for line in page.text.splitlines()
                if 'name="ref"' in line]  # fmt: skip
        assert refs
        pdf = dpo.post("/dpo/subjects", data={"ref": refs, "format": "pdf"})
        assert pdf.status_code == 200, pdf.text
        assert pdf.headers["content-type"] == "application/pdf"
        assert pdf.content.startswith(b"%PDF")
        assert "attachment" in pdf.headers["content-disposition"]
        html = dpo.post("/dpo/subjects", data={**asked.identity, "format": "html"})
        assert html.status_code == 200
        assert asked.by_name in html.text
        assert asked.identity["name"] not in html.text
        assert "<style>" in html.text  # standalone: styled without the console
    assert not [
        line for line in asked.gateway.log.lines if BSN in line or asked.identity["name"] in line
    ]


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"name": "Guus Fictief-0001"}, "only together"),
        ({"bsn": "123456789"}, "eleven-test"),
        ({}, "give a bsn"),
    ],
)
def test_a_bad_console_search_gets_a_clear_422(
    asked: Asked, form: dict[str, str], message: str
) -> None:
    with asked.gateway.dpo_client() as dpo:
        page = dpo.post("/dpo/subjects", data={**form, "format": "page"})
        assert page.status_code == 422
        assert message in page.text
        pdf = dpo.post("/dpo/subjects", data={**form, "format": "pdf"})
        assert pdf.status_code == 422
        assert pdf.headers["content-type"] == "application/problem+json"
        assert message in pdf.json()["detail"]
        for value in form.values():
            assert value not in page.text.replace(f'value="{value}"', "")
            assert value not in pdf.text
        api = dpo.post("/dpo/api/subjects", json=form)
        assert api.status_code == 422
        assert "Traceback" not in api.text
        wrong_type = dpo.post("/dpo/subjects", json={"bsn": BSN})
        assert wrong_type.status_code == 415


def test_a_partner_gets_403_on_subject_access(asked: Asked) -> None:
    with asked.gateway.client("politie") as partner:
        assert partner.get("/dpo/subjects").status_code == 403
        assert partner.post("/dpo/api/subjects", json={"bsn": BSN}).status_code == 403
        answer = partner.post("/dpo/subjects", data={"bsn": BSN})
        assert answer.status_code == 403
        assert answer.json()["type"] == "urn:doelpoort:problem:dpo-only"


def test_a_re_identification_of_the_subjects_entry_is_in_the_report(asked: Asked) -> None:
    found = _search(asked, asked.identity)
    (request,) = [r for r in found["requests"] if r["disclosure_id"] == asked.by_name]
    seq = request["decisions"][0]["seq"]
    reason = "complaint K-21 of the data subject"
    with asked.gateway.dpo_client() as dpo:
        released = dpo.post(f"/dpo/api/escrows/{seq}", json={"reason": reason})
        assert released.status_code == 200, released.text
        page = dpo.post("/dpo/subjects", data={**asked.identity, "format": "page"})
    (request,) = [
        r for r in _search(asked, asked.identity)["requests"] if r["disclosure_id"] == asked.by_name
    ]
    (release,) = request["reidentifications"]
    assert (release["entry_seq"], release["dpo"], release["reason"]) == (seq, "dpo", reason)
    assert release["seq"] == released.json()["reidentification_seq"]
    assert reason in page.text
    # Requests about other subjects show none.
    other = _search(asked, {"bsn": BSN})
    assert all(
        not r["reidentifications"] for r in other["requests"] if r["disclosure_id"] != asked.by_name
    )


# -- offline: doelpoort audit subject ------------------------------------------------------


def test_audit_subject_offline_with_the_dpo_key(asked: Asked, tmp_path: Path) -> None:
    settings = asked.gateway.settings
    key = str(settings.dpo_dir / SUBJECT_REF_KEY_FILE)
    var = ["--var-dir", str(settings.var_dir)]
    result = runner.invoke(app, ["audit", "subject", "--bsn", BSN, "--key", key, "--json", *var])
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert {asked.by_name, asked.by_bsn} <= _ids(found)
    assert asked.other not in _ids(found)
    assert BSN not in result.output

    html, pdf = tmp_path / "report.html", tmp_path / "report.pdf"
    args = ["audit", "subject", "--name", asked.identity["name"], "--date-of-birth",
            asked.identity["date_of_birth"], "--key", key, "--html", str(html),
            "--pdf", str(pdf), *var]  # fmt: skip
    summary = runner.invoke(app, args)
    assert summary.exit_code == 0, summary.output
    assert "requests" in summary.stdout
    assert "dataset decisions" in summary.stdout
    assert asked.identity["name"] not in summary.output
    assert asked.by_name in html.read_text()
    assert pdf.read_bytes().startswith(b"%PDF")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "Guus Fictief-0001"], "--name needs --date-of-birth"),
        (["--date-of-birth", "1969-03-21"], "--date-of-birth needs --name"),
        (["--bsn", "12345678"], "bsn"),
        ([], "give a bsn"),
    ],
)
def test_audit_subject_says_what_is_missing(asked: Asked, args: list[str], message: str) -> None:
    key = str(asked.gateway.settings.dpo_dir / SUBJECT_REF_KEY_FILE)
    result = runner.invoke(app, ["audit", "subject", *args, "--key", key])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_audit_subject_refuses_an_unreadable_key_and_a_missing_log(tmp_path: Path) -> None:
    loose = tmp_path / "loose.key"
    loose.write_bytes(bytes(32))
    loose.chmod(0o644)
    var = ["--var-dir", str(tmp_path / "var")]
    for key, message in [(loose, "0600"), (tmp_path / "none.key", "no DPO subject key")]:
        result = runner.invoke(app, ["audit", "subject", "--bsn", BSN, "--key", str(key), *var])
        assert result.exit_code == 1, result.output
        assert message in result.output
    good = tmp_path / "good.key"
    export_subject_ref_key(good, bytes(32))
    result = runner.invoke(app, ["audit", "subject", "--bsn", BSN, "--key", str(good), *var])
    assert result.exit_code == 2
    assert "no audit log" in result.output


def test_old_entries_stay_searchable_with_the_legacy_key(tmp_path: Path) -> None:
    # A log from before the subject key: its references were keyed from the master.
    settings = make_settings(tmp_path / "var")
    assert runner.invoke(app, ["setup", "--var-dir", str(settings.var_dir)]).exit_code == 0
    master = load_master_key(settings.keys_dir)
    current = load_subject_ref_key(settings.keys_dir / SUBJECT_REF_KEY_FILE)
    old = make_record(1, subject_refs=legacy_key(master).refs({"bsn": BSN}))
    new = make_record(2, subject_refs=current.refs({"bsn": BSN}), subject_ref_key=current.kid)

    async def append() -> None:
        with open_store(settings.audit_db_path, Ed25519PrivateKey.generate()) as store:
            await store.append([old, new])

    asyncio.run(append())

    var = ["--var-dir", str(settings.var_dir)]
    legacy_file = tmp_path / "dpo" / "legacy.key"
    exported = runner.invoke(
        app, ["keys", "subject-ref", "--export", str(legacy_file), "--legacy", *var]
    )
    assert exported.exit_code == 0, exported.output
    assert legacy_file.read_bytes() == legacy_key_bytes(master)
    assert legacy_file.stat().st_mode & 0o777 == 0o600
    assert master.hex() not in legacy_file.read_bytes().hex()
    copy = tmp_path / "dpo" / "subject-ref.key"
    assert runner.invoke(app, ["keys", "subject-ref", "--export", str(copy), *var]).exit_code == 0
    assert SubjectRefKey(copy.read_bytes()).kid == current.kid
    again = runner.invoke(app, ["keys", "subject-ref", "--export", str(copy), *var])
    assert again.exit_code == 1
    assert "exists already" in again.output

    def found(*keys: Path) -> set[str]:
        args = ["audit", "subject", "--bsn", BSN, "--json", *var]
        for key in keys:
            args += ["--key", str(key)]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        return _ids(json.loads(result.stdout))

    assert found(copy) == {new.disclosure_id}
    assert found(legacy_file) == {old.disclosure_id}
    assert found(copy, legacy_file) == {old.disclosure_id, new.disclosure_id}
