"""Memoised decisions: remembered only on the input keys the policy provably reads."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest

from gateway.policy import EmbeddedEngine, compile_bundle
from gateway.policy.memo import input_dependencies
from tests.policy.policy_support import POLICIES, demo_catalog, policy_input, real_bundle


def test_the_demo_policy_reads_neither_time_nor_case_ref() -> None:
    # The served modules: the Rego tests (*_test.rego) set every input key.
    keys = input_dependencies(source for _name, source in real_bundle().modules)
    assert keys is not None
    assert {"requester", "purpose", "dataset", "subject_keys"} <= keys
    assert not keys & {"time", "case_ref"}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("package p\nallow if input.time > 1\n", frozenset({"time"})),
        (
            "package p\nx := input.purpose\n# input as a whole in a comment\n",
            frozenset({"purpose"}),
        ),
        ('package p\nmsg := "the input"\ny := input.dataset.id\n', frozenset({"dataset"})),
        ("package p\nx := input\n", None),
        ('package p\nx := input["purpose"]\n', None),
        ("package p\nimport input as i\n", None),
        ("package p\nnow := time.now_ns()\nx := input.purpose\n", None),
        ('package p\nr := rand.intn("k", 10)\n', None),
        ('package p\nr := http.send({"method": "get", "url": "http://x"})\n', None),
        ('package p\nok := io.jwt.decode_verify(input.token, {"secret": "s"})\n', None),
        ("package p\nc := crypto.x509.parse_and_verify_certificates(input.chain)\n", None),
    ],
)
def test_input_dependencies(source: str, expected: frozenset[str] | None) -> None:
    assert input_dependencies([source]) == expected


def decide_all(engine: EmbeddedEngine, inputs: list[dict[str, Any]]) -> list[Any]:
    async def run() -> list[Any]:
        try:
            return [await engine.decide(document) for document in inputs]
        finally:
            await engine.aclose()

    return asyncio.run(run())


def test_repeated_facts_are_remembered_whatever_the_time_or_case() -> None:
    engine = EmbeddedEngine(real_bundle())
    first = policy_input("politie", "ct-assessment", "ind/residence")
    later = dict(first, time="2026-11-23T09:00:00Z", case_ref="CTI-2026-0999")
    other = policy_input("politie", "ct-assessment", "kmar/border-crossings")
    decisions = decide_all(engine, [first, later, other])
    assert decisions[0] is decisions[1]
    assert decisions[2] is not decisions[0]
    assert engine.memo is not None
    assert (engine.memo.hits, engine.memo.misses) == (1, 2)


def test_a_policy_that_reads_the_time_is_asked_every_time(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(POLICIES, policies)
    (policies / "doelpoort" / "zz_time.rego").write_text(
        "package doelpoort.disclosure\n\n"
        "# Reads the time: decisions at different times must not share a memo entry.\n"
        'office_hours if input.time >= "2026"\n'
    )
    engine = EmbeddedEngine(compile_bundle(policies, demo_catalog()))
    first = policy_input("politie", "ct-assessment", "ind/residence")
    later = dict(first, time="2026-11-23T09:00:00Z")
    decide_all(engine, [first, later])
    assert engine.memo is not None
    assert (engine.memo.hits, engine.memo.misses) == (0, 2)


def test_failures_are_not_remembered() -> None:
    engine = EmbeddedEngine(real_bundle(), timeout_s=1e-9)
    document = policy_input("politie", "ct-assessment", "ind/residence")

    async def run() -> int:
        failures = 0
        try:
            for _ in range(2):
                try:
                    await engine.decide(document)
                except Exception:
                    failures += 1
        finally:
            await engine.aclose()
        return failures

    assert asyncio.run(run()) == 2
    assert engine.memo is not None
    assert engine.memo.hits == 0


def test_inputs_differing_only_in_a_subject_fact_never_share_a_decision() -> None:
    # The memo keys on the input keys the policy reads; the policy reads subject_facts,
    # so an eligible subject's decision can never be handed to an ineligible one.
    sources = [path.read_text() for path in POLICIES.rglob("*.rego")]
    keys = input_dependencies(sources)
    assert keys is not None
    assert "subject_facts" in keys
    engine = EmbeddedEngine(real_bundle())
    assert engine.memo is not None
    eligible = policy_input(
        "dtv", "vertrek", "ind/residence", ["v_number"], subject_facts={"no_lawful_residence": True}
    )
    lawful = dict(eligible, subject_facts={"no_lawful_residence": False})
    assert engine.memo.key(eligible) != engine.memo.key(lawful)
    decisions = decide_all(engine, [eligible, lawful, eligible, lawful])
    assert [d.allow for d in decisions] == [True, False, True, False]
    assert decisions[0] is decisions[2]
    assert decisions[1] is decisions[3]
    assert (engine.memo.hits, engine.memo.misses) == (2, 2)
