"""The data protection officer's side of the gateway (SPEC §9).

The console (`console`: server-rendered pages under ``/dpo/`` and their JSON twins under
``/dpo/api/``), the re-identification release and pseudonym search (`escrows`), subject
access (`subject_access`), statistics and the annual report (`annual_report`, `charts`),
exports (`exports`) and the log's proofs (`proofs`: ``/v1/audit/…``). Every route but the
public checkpoint and consistency proofs needs a DPO certificate (`gateway.peers.require_dpo`).
What they read and compute about the log lives in the `audit` package; this package turns
it into HTTP, HTML and PDF.
"""
