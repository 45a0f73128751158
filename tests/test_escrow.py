"""Re-identification escrow: sealed to the DPO, opened only with the DPO's private key."""

from __future__ import annotations

import json
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from gateway_support import Deployment, make_settings, running_gateway
from nacl.encoding import URLSafeBase64Encoder
from nacl.public import PrivateKey
from typer.testing import CliRunner

from audit.entry import AuditRecord, entry_leaf_hash
from audit.reader import AuditReader
from gateway._cli import app
from gateway.errors import ConfigurationError
from gateway.escrow import (
    EscrowContent,
    EscrowError,
    EscrowSealer,
    create_escrow_keys,
    load_escrow_sealer,
    open_escrow,
    read_private_key,
)
from gateway.pseudonyms import PseudonymKeys, load_master_key
from gateway.settings import Settings

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
    assert open_escrow(sealer.seal(JUSTIFICATION, PAIRS), read_private_key(files.private)) == OPENED


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
        read_private_key(files.private)


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
    """A stopped gateway's state (its log under a final checkpoint) and what it released."""

    settings: Settings
    seq: int
    record: dict[str, Any]
    denied_seq: int
    both: dict[int, tuple[str, list[dict[str, Any]]]]  # one disclosure: seq → dataset, records


@pytest.fixture(scope="module")
def escrowed(tmp_path_factory: pytest.TempPathFactory) -> Escrowed:
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
    # Stopping signs a final checkpoint, so every entry is vouched for.
    return Escrowed(settings, seq, record, denied_seq, both)


def reidentify(settings: Settings, *args: str, key: Path | None = None) -> Any:
    key = key or settings.dpo_dir / "escrow.key"
    return runner.invoke(
        app,
        ["audit", "reidentify", *args, "--key", str(key), "--var-dir", str(settings.var_dir)],
    )


def test_the_dpo_reidentifies_what_a_partner_received(escrowed: Escrowed) -> None:
    result = reidentify(escrowed.settings, str(escrowed.seq))
    assert result.exit_code == 0, result.output
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

    one = reidentify(escrowed.settings, str(escrowed.seq), "--pseudonym", record["name"])
    assert one.exit_code == 0, one.output
    assert list(json.loads(one.stdout)["pseudonyms"]) == [record["name"]]


def test_reidentify_refuses_clearly(escrowed: Escrowed, tmp_path: Path) -> None:
    settings, seq = escrowed.settings, str(escrowed.seq)
    missing = reidentify(settings, "999999")
    assert missing.exit_code == 2
    assert "no entry 999999" in missing.output
    unknown = reidentify(settings, seq, "--pseudonym", "psn:" + "0" * 32)
    assert unknown.exit_code == 2
    assert "did not release" in unknown.output

    other = create_escrow_keys(tmp_path, tmp_path / "unused")
    assert other is not None
    wrong = reidentify(settings, seq, key=other.private)
    assert wrong.exit_code == 1
    assert "does not open with this key" in wrong.output
    absent = reidentify(settings, seq, key=tmp_path / "none.key")
    assert absent.exit_code == 1
    assert "no escrow private key" in absent.output
    assert "Traceback" not in wrong.output + absent.output


def test_a_denied_request_keeps_its_justification_for_the_dpo(escrowed: Escrowed) -> None:
    with AuditReader(escrowed.settings.audit_db_path) as reader:
        bodies = {e.seq: e.body for e in reader.iter_entries()}
    assert AuditRecord.from_body(bodies[escrowed.denied_seq]).decision == "deny"
    assert b"escrow test" not in bodies[escrowed.denied_seq]  # sealed, not in clear
    result = reidentify(escrowed.settings, str(escrowed.denied_seq))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"justification": "escrow test", "pseudonyms": {}}


def test_a_forged_escrow_is_caught_by_the_log_not_opened(
    escrowed: Escrowed, tmp_path: Path
) -> None:
    # Anyone with the public key can seal a false escrow: only the Merkle tree vouches.
    settings = escrowed.settings.with_var_dir(tmp_path / "var")
    shutil.copytree(escrowed.settings.var_dir, settings.var_dir)
    public = read_private_key(settings.dpo_dir / "escrow.key").public_key
    forged = EscrowSealer(public).seal("forged", FORGED)
    db = sqlite3.connect(settings.audit_db_path)
    try:
        query = "SELECT body FROM entries WHERE seq = ?"
        (body,) = db.execute(query, (escrowed.seq,)).fetchone()
        changed = json.dumps({**json.loads(body), "escrow": forged}, sort_keys=True)
        db.execute("DROP TRIGGER entries_no_update")  # as an attacker with file access
        db.execute("UPDATE entries SET body = ? WHERE seq = ?", (changed, escrowed.seq))
        db.commit()
    finally:
        db.close()
    result = reidentify(settings, str(escrowed.seq))
    assert result.exit_code == 1
    assert f"first bad entry is seq {escrowed.seq}" in result.output
    assert "Iemand" not in result.output


def test_a_gateway_without_the_public_key_runs_without_escrow(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "var")

    def remove_key(s: Settings) -> None:
        (s.keys_dir / "escrow.pub").unlink()

    with running_gateway(settings, before_start=remove_key) as gateway:
        seq, _ = disclose_pseudonyms(gateway)
        assert any("escrow off" in line for line in gateway.log.lines)
    with AuditReader(settings.audit_db_path) as reader:
        entry = next(e for e in reader.iter_entries() if e.seq == seq)
    assert AuditRecord.from_body(entry.body).escrow is None
    result = reidentify(settings, str(seq))
    assert result.exit_code == 2
    assert "has no escrow" in result.output


def test_one_escrow_per_disclosure_in_each_of_its_entries(
    escrowed: Escrowed,
) -> None:
    with AuditReader(escrowed.settings.audit_db_path) as reader:
        entries = [
            AuditRecord.from_body(e.body) for e in reader.iter_entries() if e.seq in escrowed.both
        ]
    assert len(entries) == 2
    (escrow,) = {e.escrow for e in entries}  # the same sealed box in both entries
    assert escrow is not None
    content = open_escrow(escrow, read_private_key(escrowed.settings.dpo_dir / "escrow.key"))
    pairs = content.pseudonyms
    assert set(pairs) == {e.dataset for e in entries}  # keyed by dataset
    for seq, (dataset, records) in escrowed.both.items():
        released = {
            v for r in records for v in r.values() if isinstance(v, str) and v.startswith("psn:")
        }
        assert released
        assert released == set(pairs[dataset])
        # Opening one entry shows that entry's dataset only.
        result = reidentify(escrowed.settings, str(seq))
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["pseudonyms"] == pairs[dataset]


def test_an_entry_not_yet_under_a_checkpoint_is_not_opened(
    escrowed: Escrowed, tmp_path: Path
) -> None:
    # Appending needs no key: an attacker can chain a made-up entry after the last
    # checkpoint. Only a signed checkpoint vouches for an escrow.
    settings = escrowed.settings.with_var_dir(tmp_path / "var")
    shutil.copytree(escrowed.settings.var_dir, settings.var_dir)
    with AuditReader(settings.audit_db_path) as reader:
        last = list(reader.iter_entries())[-1]
    public = read_private_key(settings.dpo_dir / "escrow.key").public_key
    forged = EscrowSealer(public).seal("forged", FORGED)
    body = json.dumps({**json.loads(last.body), "escrow": forged}, sort_keys=True).encode()
    db = sqlite3.connect(settings.audit_db_path)
    try:
        db.execute(
            "INSERT INTO entries VALUES (?, ?, CAST(? AS TEXT))",
            (last.seq + 1, entry_leaf_hash(last.seq, last.prev, last.body), body),
        )
        db.commit()
    finally:
        db.close()
    result = reidentify(settings, str(last.seq + 1))
    assert result.exit_code == 2
    assert "not yet under a signed checkpoint" in result.output
    assert "Iemand" not in result.output


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
    assert (entry.decision, entry.error, entry.escrow) == ("error", "escrow-unavailable", None)
    assert entry.records_sha256 is None
