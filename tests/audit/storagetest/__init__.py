"""The storage test suite: one set of tests for every audit storage backend.

The tests are written against the storage interface (`audit.storage.interface`) and
against `AuditStore` and `AuditReader` on top of it, never against one backend. Each runs
once per backend, on a fresh log: the `backend` fixture (conftest.py) yields a
`StorageHarness` (harness.py), which opens that backend's storages and injects the
faults the tests need the way they happen to that database (a trigger that aborts
inserts, an entry changed behind the store's back, ...).

A backend plugs in with a harness class (SQLite's is sqlite_harness.py) and one line in
`BACKENDS` (conftest.py); the test modules run on it unchanged. The one fault no real
database shows on demand, a COMMIT that landed but reported an error, comes from a test
double around the real storage (doubles.py), for every backend alike.
"""
