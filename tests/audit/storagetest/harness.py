"""What the storage suite needs of a backend: its storages, and its faults."""

from __future__ import annotations

import abc
from typing import ClassVar

from audit.entry import AuditRecord
from audit.storage.interface import LogStorage, ReadOnlyStorage


class StorageHarness(abc.ABC):
    """One backend on one fresh, empty log, for one test."""

    error: ClassVar[type[BaseException]]
    """What the backend's driver raises when the database refuses a statement."""

    rows_per_statement: ClassVar[int]
    """The rows the backend writes in one statement: a larger group takes several, in
    one transaction. (A backend without such a limit says how many a test should use
    to make a group "large".)"""

    @abc.abstractmethod
    def open_storage(self) -> LogStorage:
        """Open the log for writing, as `AuditStore` would (taking the writer lock)."""

    @abc.abstractmethod
    def open_reader(self) -> ReadOnlyStorage:
        """Open the log read-only, as `AuditReader` would."""

    def close(self) -> None:  # noqa: B027 (a backend with nothing to tidy up keeps it)
        """Tidy up after the test (drop a database, say)."""

    # -- faults, injected into the real database -----------------------------------------

    @abc.abstractmethod
    def fail_writes(self, *, purpose: str | None = None) -> None:
        """Make the database refuse new entries, as a full disk would: all of them, or
        those of records for `purpose`. `stop_failing` ends it."""

    @abc.abstractmethod
    def stop_failing(self) -> None: ...

    @abc.abstractmethod
    def append_behind_the_store(self, record: AuditRecord) -> None:
        """Commit `record` as the next entry, correctly chained, from another connection.
        A commit the store saw fail that reached the disk all the same looks like this."""

    @abc.abstractmethod
    def forge_entry(self, seq: int) -> None:
        """Insert an entry `seq` that does not chain from the one before it."""

    @abc.abstractmethod
    def tamper_body(self, seq: int) -> None:
        """Change entry `seq`'s body (allow to deny), as an attacker who can write the
        database would, past its append-only guards."""

    @abc.abstractmethod
    def delete_entry(self, seq: int) -> None:
        """Remove entry `seq`, past the append-only guards."""

    @abc.abstractmethod
    def rewrite_entry(self, seq: int) -> None:
        """Change entry `seq`'s body (allow to deny) and recompute the `prev` of every
        later entry, so that no link breaks: a rewrite by someone who can write the
        database but does not hold the log key."""

    @abc.abstractmethod
    def delete_checkpoints_above(self, size: int) -> None:
        """Remove every checkpoint larger than `size`, past the append-only guards."""

    @abc.abstractmethod
    def replace_policy_set(self, digest: str, stored: bytes) -> None:
        """Store `stored` as the archived form of the policy set under `digest`, in place
        of what is there, past the append-only guards."""

    @abc.abstractmethod
    def drop_policy_sets(self) -> None:
        """Remove the archive of policy sets altogether, as in a log made before it
        existed."""

    @abc.abstractmethod
    def leave_transaction_open(self, storage: LogStorage) -> None:
        """Leave a transaction open on `storage`'s own connection, holding an entry 1
        that is not the store's: what a ROLLBACK that failed would leave behind."""
