"""Why a logged decision came out as it did, for the console's entry page.

The entry's stored policy input is evaluated afresh by the policy set that made the
decision, read from the log's archive by the entry's digest (as ``doelpoort policy eval
--seq N --explain`` does), and `gateway.policy.explain` says which rule and register entry
gave each field op and deny reason. It never uses the serving engine's memo, and it runs
off the event loop on a thread of its own (two at a time), bounded in time: rego-cpp cannot stop an
evaluation, so one that overruns is abandoned (its thread finishes on its own) and the page
says so instead of waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from audit.entry import AuditRecord
from audit.reader import AuditReader
from gateway.errors import DoelpoortError, PolicyError
from gateway.policy.bundle import PolicyBundle, compile_sources
from gateway.policy.engine import Decision, decision_from_result
from gateway.policy.evaluator import RegoEvaluator
from gateway.policy.explain import explain

__all__ = ["EXPLAIN_TIMEOUT_S", "explain_entry"]

EXPLAIN_TIMEOUT_S = 15.0
"""How long a page waits for an explanation (compiling the archived set included)."""

# Two at a time: a DPO reading entries needs no more, and a runaway rule holds one only.
_SLOTS = threading.BoundedSemaphore(2)
_COMPILED: OrderedDict[str, PolicyBundle] = OrderedDict()
_COMPILED_LOCK = threading.Lock()
_COMPILED_KEEP = 4

log = logging.getLogger("doelpoort.dpo.explanation")


async def explain_entry(audit_db: Path, seq: int, record: AuditRecord) -> dict[str, Any]:
    """The re-evaluation and explanation of entry ``seq`` (a decision), as JSON.

    ``status`` says what there is: ``explained``; ``not-archived`` (the archive holds no
    set under the entry's digest: an entry older than the archive); ``no-input`` (the
    entry keeps no policy input); ``failed`` (the set does not compile, or the policy
    gives no valid decision for the input: ``detail`` says which); ``timeout``; ``busy``
    (every slot holds an explanation, or one abandoned that still runs).
    """
    if not record.policy_input:
        return {"status": "no-input", "detail": "the entry keeps no policy input"}
    if not _SLOTS.acquire(blocking=False):
        return {
            "status": "busy",
            "detail": "other explanations are still being worked out; try again shortly",
        }
    loop = asyncio.get_running_loop()
    done: asyncio.Future[dict[str, Any]] = loop.create_future()

    def run() -> None:
        try:
            found = _explain(audit_db, record)
        except Exception as exc:  # a bug: the page says so, the log names only its class
            log.error("entry %d could not be explained: unexpected %s", seq, type(exc).__name__)
            found = {"status": "failed", "detail": "the explanation failed unexpectedly"}
        finally:
            _SLOTS.release()
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
            loop.call_soon_threadsafe(_settle, done, found)

    # A daemon thread, not a pool's: a runaway rule must not hold up the gateway's exit.
    threading.Thread(target=run, name="doelpoort-dpo-explain", daemon=True).start()
    try:
        return await asyncio.wait_for(done, EXPLAIN_TIMEOUT_S)
    except TimeoutError:
        return {
            "status": "timeout",
            "detail": f"the explanation took longer than {EXPLAIN_TIMEOUT_S:.0f} s and was "
            "abandoned; `doelpoort policy eval --seq N --explain` has no such limit",
        }


def _settle(future: asyncio.Future[dict[str, Any]], found: dict[str, Any]) -> None:
    if not future.done():  # not given up on (wait_for cancels it at its time limit)
        future.set_result(found)


def _explain(audit_db: Path, record: AuditRecord) -> dict[str, Any]:
    digest = record.policy_digest
    try:
        bundle = _archived_bundle(audit_db, digest)
    except DoelpoortError as exc:  # a changed archive, a set that no longer compiles
        return {"status": "failed", "detail": exc.detail}
    if bundle is None:
        return {
            "status": "not-archived",
            "detail": f"the log's archive holds no policy set {digest}: the entry is older "
            "than the archive; `doelpoort policy eval --seq N --explain --policies DIR` "
            "explains it with that set's files",
        }
    document = json.dumps(record.policy_input)
    try:
        result = RegoEvaluator(bundle).evaluate(document)
        decision = decision_from_result(result, record.policy_input, bundle.digest)
    except PolicyError as exc:
        return {
            "status": "failed",
            "detail": f"the policy set gives no valid decision for this input ({exc.code}): "
            f"{exc.detail}",
            "reproduced": record.decision == "error",
        }
    explanation = explain(bundle, record.policy_input, decision)
    return {
        "status": "explained",
        "decision": "allow" if decision.allow else "deny",
        "reproduced": _reproduces(decision, record),
        "explanation": explanation.as_json(),
        "lines": explanation.lines(),
    }


def _reproduces(decision: Decision, record: AuditRecord) -> bool:
    """Whether the fresh decision is the logged one (as ``policy eval --seq`` judges)."""
    return (
        record.decision == ("allow" if decision.allow else "deny")
        and record.field_ops == dict(decision.field_ops)
        and record.reasons == list(decision.reasons)
        and record.retention_days == decision.retention_days
        and record.legal_basis == decision.legal_basis
    )


def _archived_bundle(audit_db: Path, digest: str) -> PolicyBundle | None:
    """The archived set under ``digest``, compiled (the last few are kept compiled)."""
    with _COMPILED_LOCK:
        if digest in _COMPILED:
            _COMPILED.move_to_end(digest)
            return _COMPILED[digest]
    with AuditReader(audit_db) as reader:
        files = reader.policy_set(digest)  # PolicySetMismatch when it was changed
    if files is None:
        return None
    bundle = compile_sources(tuple(files.items()), where=Path(f"archived policy set {digest}"))
    with _COMPILED_LOCK:
        _COMPILED[digest] = bundle
        while len(_COMPILED) > _COMPILED_KEEP:
            _COMPILED.popitem(last=False)
    return bundle
