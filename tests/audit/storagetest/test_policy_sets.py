"""The archive of policy sets on each backend: content-addressed, idempotent, tamper-evident."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.clock import rfc3339_micro
from audit.errors import AuditError, PolicySetMismatch
from audit.policy_sets import ArchivedPolicySet, encode_policy_set, policy_digest
from audit.store import AuditStore
from tests.audit.audit_support import START, WallClock, make_record
from tests.audit.storagetest.doubles import RecordingStorage
from tests.audit.storagetest.harness import StorageHarness
from tests.audit.storagetest.support import open_store, reader, verify

SET_A = (
    ("doelpoort/disclosure.rego", "package doelpoort.disclosure\n\ndefault decision := {}\n"),
    ("register.yaml", "purposes: {}\n"),
    ("catalog.json", '{"datasets":{},"partners":{}}'),
)
# Another set: one rule changed, a file added, non-ASCII text in a path and a content.
SET_B = (
    ("doelpoort/disclosure.rego", "package doelpoort.disclosure\n\ndefault decision := 1\n"),
    ("doelpoort/überprüfung.rego", "package doelpoort.x\n\n# “Prüfung” — één\nx := 1\n"),
    ("register.yaml", "purposes: {}\n"),
    ("catalog.json", '{"datasets":{},"partners":{}}'),
)
A, B = policy_digest(SET_A), policy_digest(SET_B)


def archive(store: AuditStore, sources: tuple[tuple[str, str], ...]) -> bool:
    return asyncio.run(store.archive_policy_set(policy_digest(sources), sources))


def test_a_set_is_archived_under_its_digest_and_read_back_whole(
    backend: StorageHarness, key: Ed25519PrivateKey
) -> None:
    storage = RecordingStorage(backend.open_storage())
    with open_store(storage, key, now=WallClock()) as store:
        assert archive(store, SET_A) is True
        # On the storage thread, like every other write of the store.
        assert all(t.startswith("audit") for t in storage.threads("archive_policy_set"))
    with reader(backend) as log:
        assert log.policy_set(A) == dict(SET_A)
        assert log.policy_sets() == [ArchivedPolicySet(A, rfc3339_micro(START))]
        assert log.policy_set(B) is None
        assert log.policy_set("sha256:" + "0" * 64) is None


def test_archiving_a_set_again_changes_nothing_and_keeps_its_first_use(
    backend: StorageHarness, key: Ed25519PrivateKey
) -> None:
    clock = WallClock()
    with open_store(backend.open_storage(), key, now=clock) as store:
        assert archive(store, SET_A) is True
        clock.now = START + timedelta(days=1)
        assert archive(store, SET_B) is True
        clock.now = START + timedelta(days=2)
        assert archive(store, SET_A) is False
    with open_store(backend.open_storage(), key, now=clock) as store:  # a restart
        assert archive(store, SET_B) is False
    with reader(backend) as log:
        assert log.policy_sets() == [
            ArchivedPolicySet(A, rfc3339_micro(START)),
            ArchivedPolicySet(B, rfc3339_micro(START + timedelta(days=1))),
        ]
        assert log.policy_set(B) == dict(SET_B)


def test_archiving_goes_on_between_commits_and_leaves_the_log_intact(
    backend: StorageHarness, key: Ed25519PrivateKey
) -> None:
    async def run(store: AuditStore) -> None:
        appends = [store.append([make_record(i)]) for i in range(20)]
        archived = store.archive_policy_set(A, SET_A)
        await asyncio.gather(*appends[:10], archived, *appends[10:])

    with open_store(backend.open_storage(), key) as store:
        asyncio.run(run(store))
        assert store.size == 20
        assert store.healthy()
    assert verify(backend, key).entries == 20
    with reader(backend) as log:
        assert log.policy_set(A) == dict(SET_A)


def test_a_digest_that_is_not_the_sets_is_refused(
    backend: StorageHarness, key: Ed25519PrivateKey
) -> None:
    with (
        open_store(backend.open_storage(), key) as store,
        pytest.raises(ValueError, match="digest"),
    ):
        asyncio.run(store.archive_policy_set(B, SET_A))
    with reader(backend) as log:
        assert log.policy_sets() == []


def test_a_changed_set_is_refused_when_read_and_when_archived_again(
    backend: StorageHarness, key: Ed25519PrivateKey
) -> None:
    with open_store(backend.open_storage(), key) as store:
        archive(store, SET_A)
    tampered = dict(SET_A) | {"register.yaml": "purposes: {anything: goes}\n"}
    backend.replace_policy_set(A, encode_policy_set(tampered.items()))
    with reader(backend) as log, pytest.raises(PolicySetMismatch, match=A):
        log.policy_set(A)
    # The gateway would start with this set: it cannot, since the archive could not show it.
    with (
        open_store(backend.open_storage(), key) as store,
        pytest.raises(PolicySetMismatch, match="changed after it was archived"),
    ):
        archive(store, SET_A)


@pytest.mark.parametrize(
    "stored",
    [
        encode_policy_set(SET_B),  # another set's content under this digest
        b'["not", "a", "set"]',
        b'{"register.yaml": 1}',
        b"\xff not JSON",
    ],
)
def test_what_is_not_the_set_under_a_digest_is_refused(
    backend: StorageHarness, key: Ed25519PrivateKey, stored: bytes
) -> None:
    with open_store(backend.open_storage(), key) as store:
        archive(store, SET_A)
    backend.replace_policy_set(A, stored)
    with reader(backend) as log, pytest.raises(PolicySetMismatch):
        log.policy_set(A)


def test_a_log_made_before_the_archive_gets_it_when_the_gateway_opens_it(
    backend: StorageHarness, key: Ed25519PrivateKey
) -> None:
    with open_store(backend.open_storage(), key) as store:
        asyncio.run(store.append([make_record(1)]))
    backend.drop_policy_sets()
    with reader(backend) as log:  # a reader adds nothing: it finds no set
        assert log.policy_sets() == []
        assert log.policy_set(A) is None
    with open_store(backend.open_storage(), key) as store:
        assert archive(store, SET_A) is True
        asyncio.run(store.append([make_record(2)]))
    with reader(backend) as log:
        assert log.policy_set(A) == dict(SET_A)
    assert verify(backend, key).entries == 2


def test_a_closed_store_archives_nothing(backend: StorageHarness, key: Ed25519PrivateKey) -> None:
    with open_store(backend.open_storage(), key) as store:
        pass
    with pytest.raises(AuditError, match="closed"):
        archive(store, SET_A)
