"""Re-identification escrow: sealed to the DPO, opened only with the DPO's private key."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from nacl.encoding import URLSafeBase64Encoder
from nacl.public import PrivateKey
from typer.testing import CliRunner

from audit.entry import AuditRecord, escrow_digest
from audit.reader import AuditReader
from gateway._cli import app
from gateway.errors import ConfigurationError, EscrowError
from gateway.escrow import (
    EscrowContent,
    EscrowSealer,
    load_escrow_sealer,
    open_escrow,
)
from gateway.keys import create_escrow_keys, load_master_key, read_escrow_private_key
from gateway.policy.register import Register
from gateway.pseudonyms import PseudonymKeys
from gateway.runtime import Runtime
from gateway.settings import Settings
from tests.gateway_support import Deployment, make_settings, running_gateway

runner = CliRunner()

PAIRS: dict[str, dict[str, object]] = {
    "ind/residence": {"psn:0a": "Fictief Persoon Één", "psn:0b": 123456782, "psn:0c": None},
    "kmar/border-crossings": {"psn:0a": "Fictief Persoon Één"},
}
JUSTIFICATION = "synthetic: why this is necessary and proportionate (names Fictief Persoon)"
OPENED = EscrowContent(JUSTIFICATION, PAIRS)
FORGED: dict[str, dict[str, object]] = {
    "ind/residence": {"psn:" + "1" * 32: "Iemand Anders (fictief)"}
}


def test_an_escrow_opens_only_with_the_dpo_private_key() -> None:
    dpo = PrivateKey.generate()
    escrow = EscrowSealer(dpo.public_key).seal(JUSTIFICATION, PAIRS)
    assert open_escrow(escrow, dpo) == OPENED
    with pytest.raises(EscrowError):
        open_escrow(escrow, PrivateKey.generate())


@pytest.mark.parametrize(
    "damage",
    [
        lambda e: e[:-4] + ("AAAA" if e[-4:] != "AAAA" else "BBBB"),  # ciphertext changed
        lambda e: "v2" + e[2:],  # unknown version
        lambda e: e[:40],  # cut short
        lambda e: e + ".extra",
        lambda e: "v1.not-base64!",
        lambda e: "v1.é",
        lambda e: "",
    ],
)
def test_a_damaged_escrow_is_refused(damage: Any) -> None:
    dpo = PrivateKey.generate()
    escrow = EscrowSealer(dpo.public_key).seal(JUSTIFICATION, PAIRS)
    with pytest.raises(EscrowError):
        open_escrow(damage(escrow), dpo)


def test_every_escrow_is_its_own_sealed_box() -> None:
    # A fresh ephemeral key per box: equal pairs give unrelated escrows, so escrows do
    # not link entries, and nothing the gateway keeps opens an escrow it made.
    sealer = EscrowSealer(PrivateKey.generate().public_key)
    first, second = sealer.seal(JUSTIFICATION, PAIRS), sealer.seal(JUSTIFICATION, PAIRS)
    assert first != second
    assert first[:40] != second[:40]


def test_escrow_keys_are_made_once_and_the_private_half_is_private(tmp_path: Path) -> None:
    files = create_escrow_keys(tmp_path / "dpo", tmp_path / "keys")
    assert files is not None
    assert files.private.stat().st_mode & 0o777 == 0o600
    public = files.public.read_bytes()
    assert create_escrow_keys(tmp_path / "dpo", tmp_path / "keys") is None
    assert files.public.read_bytes() == public
    sealer = load_escrow_sealer(tmp_path / "keys")
    assert sealer is not None
    assert (
        open_escrow(sealer.seal(JUSTIFICATION, PAIRS), read_escrow_private_key(files.private))
        == OPENED
    )


def test_without_a_public_key_there_is_no_escrow(tmp_path: Path) -> None:
    assert load_escrow_sealer(tmp_path) is None


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not a key\n",
        b"AAAA\n",
        "é".encode(),
        URLSafeBase64Encoder.encode(bytes(32)),  # a low-order point: no shared secret
    ],
)
def test_a_malformed_public_key_stops_start_up(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "escrow.pub").write_bytes(content)
    with pytest.raises(ConfigurationError, match=r"escrow\.pub"):
        load_escrow_sealer(tmp_path)


def test_a_dangling_public_key_link_stops_start_up(tmp_path: Path) -> None:
    (tmp_path / "escrow.pub").symlink_to(tmp_path / "gone.pub")
    with pytest.raises(ConfigurationError, match=r"escrow\.pub"):
        load_escrow_sealer(tmp_path)


def test_a_private_key_others_can_read_is_refused(tmp_path: Path) -> None:
    files = create_escrow_keys(tmp_path / "dpo", tmp_path / "keys")
    assert files is not None
    files.private.chmod(0o644)
    with pytest.raises(ConfigurationError, match="0600"):
        read_escrow_private_key(files.private)


def test_keys_escrow_writes_the_private_half_outside_the_gateway_state(tmp_path: Path) -> None:
    var = tmp_path / "var"
    inside = runner.invoke(
        app, ["keys", "escrow", "--private-dir", str(var / "dpo"), "--var-dir", str(var)]
    )
    assert inside.exit_code == 2
    assert "never be readable by the gateway" in inside.output
    assert not (var / "keys" / "escrow.pub").exists()

    args = ["keys", "escrow", "--private-dir", str(tmp_path / "dpo"), "--var-dir", str(var)]
    made = runner.invoke(app, args)
    assert made.exit_code == 0, made.output
    assert (tmp_path / "dpo" / "escrow.key").stat().st_mode & 0o777 == 0o600
    public = (var / "keys" / "escrow.pub").read_bytes()
    again = runner.invoke(app, args)
    assert again.exit_code == 2
    assert "exists already" in again.output
    assert (var / "keys" / "escrow.pub").read_bytes() == public


def ask(gateway: Deployment, partner: str, purpose: str, datasets: list[str]) -> Any:
    return gateway.disclose(
        partner,
        {
            "purpose": purpose,
            "case_ref": "CTI-2026-0901",
            "justification": "escrow test",
            "subject": gateway.subjects["ct_subject"],
            "datasets": datasets,
        },
    )


def disclose_pseudonyms(gateway: Deployment) -> tuple[int, dict[str, Any]]:
    """A disclosure that released pseudonyms: (its dataset's audit seq, its record)."""
    response = ask(gateway, "politie", "ct-assessment", ["ind/residence"])
    assert response.status_code == 200, response.text
    (result,) = response.json()["disclosure"]["results"]
    assert result["field_ops"]["name"] == "pseudonymise"
    assert result["records"]
    return result["audit_seq"], result["records"][0]


@dataclass(frozen=True)
class Escrowed:
    """A running gateway and what it released."""

    gateway: Deployment
    seq: int
    record: dict[str, Any]
    denied_seq: int
    both: dict[int, tuple[str, list[dict[str, Any]]]]  # one disclosure: seq → dataset, records

    @property
    def settings(self) -> Settings:
        return self.gateway.settings


@pytest.fixture(scope="module")
def escrowed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Escrowed]:
    settings = make_settings(tmp_path_factory.mktemp("escrow") / "var")
    with running_gateway(settings) as gateway:
        seq, record = disclose_pseudonyms(gateway)
        assert any("escrow on" in line for line in gateway.log.lines)
        refused = ask(gateway, "politie", "vertrek", ["ind/residence"])  # not granted
        assert refused.status_code == 403, refused.text
        with AuditReader(settings.audit_db_path) as reader:
            denied_seq = list(reader.iter_entries())[-1].seq
        two = ask(gateway, "politie", "ct-assessment", ["ind/residence", "kmar/border-crossings"])
        assert two.status_code == 200, two.text
        results = two.json()["disclosure"]["results"]
        both = {r["audit_seq"]: (r["dataset"], r["records"]) for r in results}
        yield Escrowed(gateway, seq, record, denied_seq, both)


REASON = "supervisor's question about case CTI-2026-0901"


def reidentify(gateway: Deployment, *args: str, key: Path | None = None) -> Any:
    """`doelpoort audit reidentify` against the running gateway, as the DPO (``args``
    first the entry's seq, then options that replace the defaults)."""
    settings = gateway.settings
    key = key or settings.dpo_dir / "escrow.key"
    return runner.invoke(
        app,
        [
            "audit", "reidentify", "--key", str(key), "--reason", REASON,
            "--url", gateway.base_url, "--var-dir", str(settings.var_dir),
            *args,  # last: a test's own options win
        ],
    )  # fmt: skip


def test_the_dpo_reidentifies_what_a_partner_received(escrowed: Escrowed) -> None:
    result = reidentify(escrowed.gateway, str(escrowed.seq))
    assert result.exit_code == 0, result.output
    # The release was recorded first: the newest entry says who, which entry and why.
    with AuditReader(escrowed.settings.audit_db_path) as reader:
        last = list(reader.iter_entries())[-1]
    assert f"the release is recorded as audit entry {last.seq}" in result.output
    release = json.loads(last.body)
    assert (release["kind"], release["entry_seq"], release["reason"]) == (
        "reidentification",
        escrowed.seq,
        REASON,
    )
    shown = json.loads(result.stdout)
    assert shown["justification"] == "escrow test"  # what the requester wrote, for the DPO
    pairs = shown["pseudonyms"]
    record = escrowed.record
    released = {v for v in record.values() if isinstance(v, str) and v.startswith("psn:")}
    assert released
    assert released <= set(pairs)
    # Each value is what the pseudonym stands for in that requester x purpose domain.
    domain = PseudonymKeys(load_master_key(escrowed.settings.keys_dir)).domain(
        "politie", "ct-assessment"
    )
    assert all(domain.pseudonym(value) == psn for psn, value in pairs.items())

    one = reidentify(escrowed.gateway, str(escrowed.seq), "--pseudonym", record["name"])
    assert one.exit_code == 0, one.output
    assert list(json.loads(one.stdout)["pseudonyms"]) == [record["name"]]


def test_reidentify_refuses_clearly(escrowed: Escrowed, tmp_path: Path) -> None:
    gateway, seq = escrowed.gateway, str(escrowed.seq)
    missing = reidentify(gateway, "999999")
    assert missing.exit_code == 2
    assert "no entry 999999" in missing.output
    unknown = reidentify(gateway, seq, "--pseudonym", "psn:" + "0" * 32)
    assert unknown.exit_code == 2
    assert "did not release" in unknown.output

    other = create_escrow_keys(tmp_path, tmp_path / "unused")
    assert other is not None
    wrong = reidentify(gateway, seq, key=other.private)
    assert wrong.exit_code == 1
    assert "does not open with this key" in wrong.output
    absent = reidentify(gateway, seq, key=tmp_path / "none.key")
    assert absent.exit_code == 1
    assert "no escrow private key" in absent.output
    partner = reidentify(
        gateway,
        seq,
        "--cert",
        str(gateway.paths.partner_cert("politie")),
        "--tls-key",
        str(gateway.paths.partner_key("politie")),
    )
    assert partner.exit_code == 1
    assert "is --cert a DPO certificate?" in partner.output
    unreachable = reidentify(gateway, seq, "--url", "https://127.0.0.1:9")
    assert unreachable.exit_code == 1
    assert "cannot reach the gateway at https://127.0.0.1:9" in unreachable.output
    no_reason = reidentify(gateway, seq, "--reason", " ")
    assert no_reason.exit_code == 2
    outputs = wrong.output + absent.output + partner.output + unreachable.output
    assert "Traceback" not in outputs + no_reason.output


def test_a_denied_request_keeps_its_justification_for_the_dpo(escrowed: Escrowed) -> None:
    with AuditReader(escrowed.settings.audit_db_path) as reader:
        bodies = {e.seq: e.body for e in reader.iter_entries()}
    assert AuditRecord.from_body(bodies[escrowed.denied_seq]).decision == "deny"
    assert b"escrow test" not in bodies[escrowed.denied_seq]  # sealed, not in clear
    result = reidentify(escrowed.gateway, str(escrowed.denied_seq))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"justification": "escrow test", "pseudonyms": {}}


def tamper(settings: Settings, statement: str, *params: object) -> None:
    """Change the log as an attacker with file access would: triggers dropped first."""
    db = sqlite3.connect(settings.audit_db_path)
    try:
        db.execute("DROP TRIGGER IF EXISTS entries_no_update")
        db.execute(statement, params)
        db.commit()
    finally:
        db.close()


@contextmanager
def one_disclosure(tmp_path: Path) -> Iterator[tuple[Deployment, int]]:
    """A gateway of a test's own (to tamper with), and an entry that released pseudonyms."""
    with running_gateway(make_settings(tmp_path / "var")) as gateway:
        seq, _ = disclose_pseudonyms(gateway)
        yield gateway, seq


def test_a_swapped_escrow_is_not_opened(tmp_path: Path) -> None:
    # The escrow sits beside the hashed body (so it can be erased); the body's digest
    # is what ties it to the entry, and the DPO's tool checks it.
    with one_disclosure(tmp_path) as (gateway, seq):
        public = read_escrow_private_key(gateway.settings.dpo_dir / "escrow.key").public_key
        forged = EscrowSealer(public).seal("forged", FORGED)
        tamper(gateway.settings, "UPDATE entries SET escrow = ? WHERE seq = ?", forged, seq)
        result = reidentify(gateway, str(seq))
    assert result.exit_code == 1
    assert "not the one it was logged with" in result.output
    assert "Iemand" not in result.output


def test_a_forged_entry_and_escrow_that_agree_are_not_opened(tmp_path: Path) -> None:
    # Whoever can write the database (but holds no log key) can seal a false escrow with
    # the public key and rewrite the entry's body to name its digest. Only the signed log
    # vouches for a real entry: the DPO's tool proves the entry's inclusion first.
    with one_disclosure(tmp_path) as (gateway, seq):
        public = read_escrow_private_key(gateway.settings.dpo_dir / "escrow.key").public_key
        forged = EscrowSealer(public).seal("forged", FORGED)
        with AuditReader(gateway.settings.audit_db_path) as reader:
            body = json.loads(next(reader.iter_entries(seq)).body)
        body["escrow_sha256"] = escrow_digest(forged)
        rewritten = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        tamper(
            gateway.settings,
            "UPDATE entries SET body = ?, escrow = ? WHERE seq = ?",
            rewritten,
            forged,
            seq,
        )
        result = reidentify(gateway, str(seq))
    assert result.exit_code == 1, result.output
    assert "does not match its signed checkpoint" in result.output
    assert "Iemand" not in result.output, result.output
    assert "Traceback" not in result.output


def test_a_gateway_without_the_public_key_runs_without_escrow(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "var")

    def remove_key(s: Settings) -> None:
        (s.keys_dir / "escrow.pub").unlink()

    with running_gateway(settings, before_start=remove_key) as gateway:
        seq, _ = disclose_pseudonyms(gateway)
        assert any("escrow off" in line for line in gateway.log.lines)
        result = reidentify(gateway, str(seq))
    with AuditReader(settings.audit_db_path) as reader:
        entry = next(e for e in reader.iter_entries() if e.seq == seq)
        assert reader.escrow(seq) is None
    assert AuditRecord.from_body(entry.body).escrow_sha256 is None
    assert result.exit_code == 2
    assert "has no escrow" in result.output


def test_one_escrow_per_disclosure_in_each_of_its_entries(
    escrowed: Escrowed,
) -> None:
    with AuditReader(escrowed.settings.audit_db_path) as reader:
        entries = [
            AuditRecord.from_body(e.body) for e in reader.iter_entries() if e.seq in escrowed.both
        ]
        (escrow,) = {reader.escrow(seq) for seq in escrowed.both}  # one box beside both
    assert len(entries) == 2
    assert escrow is not None
    assert {e.escrow_sha256 for e in entries} == {escrow_digest(escrow)}
    content = open_escrow(escrow, read_escrow_private_key(escrowed.settings.dpo_dir / "escrow.key"))
    pairs = content.pseudonyms
    assert set(pairs) == {e.dataset for e in entries}  # keyed by dataset
    for seq, (dataset, records) in escrowed.both.items():
        released = {
            v for r in records for v in r.values() if isinstance(v, str) and v.startswith("psn:")
        }
        assert released
        assert released == set(pairs[dataset])
        # Opening one entry shows that entry's dataset only.
        result = reidentify(escrowed.gateway, str(seq))
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["pseudonyms"] == pairs[dataset]


class FailingEscrowSealer:
    """Test double: an escrow that cannot be sealed (a broken crypto library, say)."""

    def seal(self, justification: str, pseudonyms: object) -> str:
        raise RuntimeError("sealing failed")


def test_a_dataset_whose_pseudonyms_cannot_be_escrowed_is_withheld(tmp_path: Path) -> None:
    with running_gateway(make_settings(tmp_path / "var")) as gateway:
        gateway.runtime.disclosures.escrow = FailingEscrowSealer()  # type: ignore[assignment]
        response = ask(gateway, "politie", "ct-assessment", ["ind/residence"])
        assert response.status_code == 200, response.text
        (result,) = response.json()["disclosure"]["results"]
        assert result["decision"] == "error"
        assert result["error"]["type"] == "urn:doelpoort:problem:escrow-unavailable"
        assert "records" not in result
        with AuditReader(gateway.settings.audit_db_path) as reader:
            entry = AuditRecord.from_body(list(reader.iter_entries())[-1].body)
    assert (entry.decision, entry.error, entry.escrow_sha256) == (
        "error",
        "escrow-unavailable",
        None,
    )
    assert entry.records_sha256 is None


def escrow_expiry(settings: Settings) -> dict[int, tuple[str, int | None]]:
    """seq → (the entry's time, when its escrow is to be erased, in Unix seconds)."""
    db = sqlite3.connect(settings.audit_db_path)
    try:
        rows = db.execute("SELECT seq, time, escrow_expires FROM entries").fetchall()
    finally:
        db.close()
    return {seq: (time, expires) for seq, time, expires in rows}


def test_an_escrow_is_kept_for_its_purpose_retention(escrowed: Escrowed) -> None:
    register = Register.load(escrowed.settings.policies_dir / "register.yaml")
    expiry = escrow_expiry(escrowed.settings)
    for seq, purpose in [(escrowed.seq, "ct-assessment"), (escrowed.denied_seq, "vertrek")]:
        time, expires = expiry[seq]
        logged = int(datetime.fromisoformat(time).timestamp())
        # A refusal keeps its justification for as long as the purpose keeps data.
        assert expires == logged + register.purposes[purpose].retention_days * 86_400


def test_a_gateway_erases_the_escrows_whose_retention_ended(
    escrowed: Escrowed, tmp_path: Path
) -> None:
    settings = escrowed.settings.with_var_dir(tmp_path / "var")
    shutil.copytree(escrowed.settings.var_dir, settings.var_dir)
    expiry = escrow_expiry(settings)
    # ct-assessment keeps data 365 days, vertrek 730: a day after the first ran out.
    later = datetime.fromtimestamp(expiry[escrowed.seq][1] or 0, UTC) + timedelta(days=1)

    async def start_and_stop() -> None:
        runtime = await Runtime.start(settings, clock=lambda: later)
        await runtime.close()

    asyncio.run(start_and_stop())
    after = escrow_expiry(settings)
    assert after[escrowed.seq][1] is None
    assert after[escrowed.denied_seq] == expiry[escrowed.denied_seq]  # not yet
    with running_gateway(settings) as gateway:
        gateway.runtime.disclosures.clock = lambda: later  # the DPO's day
        erased = reidentify(gateway, str(escrowed.seq))
        kept = reidentify(gateway, str(escrowed.denied_seq))
    assert erased.exit_code == 2
    assert "erased when the purpose's retention ended" in erased.output
    assert kept.exit_code == 0, kept.output
    # The erased escrows are gone from the disk, not merely unlinked.
    with AuditReader(escrowed.settings.audit_db_path) as reader:
        original = reader.escrow(escrowed.seq)
    assert original is not None
    wal = settings.audit_db_path.with_name(settings.audit_db_path.name + "-wal")
    on_disk = settings.audit_db_path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    assert original.encode() not in on_disk
    # Verify still holds: only what the tree does not cover was erased.
    verified = runner.invoke(app, ["audit", "verify", "--var-dir", str(settings.var_dir)])
    assert verified.exit_code == 0, verified.output


def test_a_running_gateway_erases_them_as_they_expire(
    escrowed: Escrowed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("gateway.runtime.ESCROW_SWEEP_INTERVAL_S", 0.01)
    settings = escrowed.settings.with_var_dir(tmp_path / "var")
    shutil.copytree(escrowed.settings.var_dir, settings.var_dir)
    expires = escrow_expiry(settings)[escrowed.seq][1] or 0
    now = [datetime.fromtimestamp(expires, UTC) - timedelta(seconds=1)]

    async def run() -> None:
        runtime = await Runtime.start(settings, clock=lambda: now[0])
        try:
            assert escrow_expiry(settings)[escrowed.seq][1] == expires  # not yet
            now[0] += timedelta(seconds=1)
            for _ in range(200):
                await asyncio.sleep(0.01)
                if escrow_expiry(settings)[escrowed.seq][1] is None:
                    break
        finally:
            await runtime.close()

    asyncio.run(run())
    assert escrow_expiry(settings)[escrowed.seq][1] is None


def test_an_escrow_erased_before_its_time_is_reported_as_such(tmp_path: Path) -> None:
    # The triggers let anyone with write access erase an escrow; the body says when the
    # store would have, so an early erasure shows.
    with one_disclosure(tmp_path) as (gateway, seq):
        tamper(
            gateway.settings,
            "UPDATE entries SET escrow = NULL, escrow_expires = NULL WHERE seq = ?",
            seq,
        )
        result = reidentify(gateway, str(seq))
    assert result.exit_code == 2
    assert "erased before its retention ended" in result.output
    assert "changed outside the gateway" in result.output


def test_reidentify_reads_a_damaged_escrow_column_without_a_traceback(tmp_path: Path) -> None:
    with one_disclosure(tmp_path) as (gateway, seq):
        # Not UTF-8: matches no digest.
        tamper(
            gateway.settings, "UPDATE entries SET escrow = CAST(X'FF' AS TEXT) WHERE seq = ?", seq
        )
        result = reidentify(gateway, str(seq))
    assert result.exit_code == 1, result.output
    assert "not the one it was logged with" in result.output
    assert "Traceback" not in result.output
