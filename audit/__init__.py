"""Doelpoort's tamper-evident audit log: entries, Merkle tree, checkpoints, store, verify.

Terms (entry, body, leaf bytes, chain, tree, checkpoint) are defined in
docs/data-model.md, section "Audit log". Modules, one concept each:

* `hasher` — RFC 9162 leaf and node hashes
* `tree` — the compact range (append, root) and the reference tree for tests
* `entry` — `AuditRecord` (a decision), the refusal records, their bodies, and the leaf
  bytes and hash of an entry
* `checkpoint` — C2SP signed-note checkpoints; `keys` — the log key on disk
* `store` — the durable group-commit writer (scheduling on the event loop);
  `state` — what it knows of the committed log; `retention` — erasing expired escrows
* `storage` — the storage interface a backend implements, the tables (SQLModel) and the
  SQLite backend, where every SQL statement lives
* `policy_sets` — the digest of a policy set, and the archived form of one
* `reader` — read-only access
* `query` — the DPO's searches: filtered pages of requests, an entry, a request, a
  streamed selection, entries by subject or pseudonym reference
* `verify` — recompute everything and name the first bad entry
"""

from audit.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from audit.entry import AuditRecord, leaf_bytes
from audit.errors import AuditVerificationError, CheckpointError, VerificationError
from audit.keys import load_log_public_key
from audit.reader import AuditReader, StoredCheckpoint, StoredEntry
from audit.store import AuditStore
from audit.verify import VerifyReport, verify_log

__all__ = [
    "AuditReader",
    "AuditRecord",
    "AuditStore",
    "AuditVerificationError",
    "Checkpoint",
    "CheckpointError",
    "StoredCheckpoint",
    "StoredEntry",
    "VerificationError",
    "VerifyReport",
    "leaf_bytes",
    "load_log_public_key",
    "open_checkpoint",
    "sign_checkpoint",
    "verify_log",
]
