"""Helpers of the policy tests: the demo datasets' policy views and a synchronous decider.

Plain functions rather than a ``conftest.py`` (test directories carry no ``__init__.py``,
so a second ``conftest`` module would collide under mypy). Dataset views are read
straight from ``connectors/*.yaml``, not through gateway.connectors, so that the policy
tests do not take the catalog's word for what the YAML says; the loaded catalog is only
what `compile_bundle` takes (its policy document is part of the policy set).
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from gateway.connectors.catalog import Catalog
from gateway.policy import (
    Decision,
    EmbeddedEngine,
    build_policy_input,
    compile_bundle,
    dataset_input,
)
from gateway.policy.bundle import PolicyBundle

REPO = Path(__file__).resolve().parents[2]
POLICIES = REPO / "policies"
CONNECTORS = REPO / "connectors"
NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


@cache
def partners() -> dict[str, dict[str, Any]]:
    """Partner id → its connectors/<partner>.yaml (every file but the vocabulary)."""
    found = {}
    for path in sorted(CONNECTORS.glob("*.yaml")):
        if path.name == "vocabulary.yaml":
            continue
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        found[doc["partner"]] = doc
    return found


def roles(partner: str) -> list[str]:
    return list(partners()[partner]["roles"])


@cache
def dataset_views() -> dict[str, dict[str, Any]]:
    """``<partner>/<dataset>`` → the dataset's policy view (names and categories)."""
    views = {}
    for partner, doc in partners().items():
        for name, spec in (doc.get("datasets") or {}).items():
            views[f"{partner}/{name}"] = {
                "id": f"{partner}/{name}",
                "provider": partner,
                "domain": spec["domain"],
                "fields": {
                    field: {"type": f["type"], "category": f["category"]}
                    for field, f in spec["fields"].items()
                },
                "identity_keys": spec["identity_keys"],
            }
    return views


@cache
def _required_facts() -> dict[str, list[str]]:
    raw = yaml.safe_load((POLICIES / "register.yaml").read_text(encoding="utf-8"))
    return {name: p.get("requires_facts", []) for name, p in raw["purposes"].items()}


def eligible(purpose: str) -> dict[str, bool]:
    """Subject facts for a subject every fact the purpose requires holds for."""
    return dict.fromkeys(_required_facts().get(purpose, []), True)


def policy_input(
    requester: str,
    purpose: str,
    dataset: str,
    subject_keys: Iterable[str] = ("bsn",),
    *,
    justification: bool = True,
    view: Mapping[str, Any] | None = None,
    subject_facts: Mapping[str, bool] | None = None,
) -> dict[str, Any]:
    """The input the gateway builds; by default for an eligible subject (``eligible``),
    so that a test sees the rule it is about rather than the facts' refusal."""
    return build_policy_input(
        requester_id=requester,
        roles=roles(requester),
        purpose=purpose,
        case_ref="CTI-2026-0042",
        has_justification=justification,
        dataset=dataset_input(view if view is not None else dataset_views()[dataset]),
        subject_keys=subject_keys,
        now=NOW,
        subject_facts=eligible(purpose) if subject_facts is None else subject_facts,
    )


@cache
def demo_catalog() -> Catalog:
    """The demo deployment's connector catalog (no connector is ever built from it here)."""
    return Catalog.load(CONNECTORS, REPO / "var")


@cache
def real_bundle() -> PolicyBundle:
    return compile_bundle(POLICIES, demo_catalog())


class Decider:
    """Runs an EmbeddedEngine from synchronous tests."""

    def __init__(self, bundle: PolicyBundle, *, timeout_s: float = 5.0) -> None:
        self.engine = EmbeddedEngine(bundle, timeout_s=timeout_s)

    def raw(self, document: Mapping[str, Any]) -> Decision:
        return asyncio.run(self.engine.decide(document))

    def __call__(
        self,
        requester: str,
        purpose: str,
        dataset: str,
        subject_keys: Iterable[str] = ("bsn",),
        *,
        justification: bool = True,
        view: Mapping[str, Any] | None = None,
        subject_facts: Mapping[str, bool] | None = None,
    ) -> Decision:
        document = policy_input(
            requester,
            purpose,
            dataset,
            subject_keys,
            justification=justification,
            view=view,
            subject_facts=subject_facts,
        )
        return self.raw(document)

    def close(self) -> None:
        asyncio.run(self.engine.aclose())


@contextmanager
def decider(bundle: PolicyBundle | None = None, *, timeout_s: float = 5.0) -> Iterator[Decider]:
    d = Decider(bundle or real_bundle(), timeout_s=timeout_s)
    try:
        yield d
    finally:
        d.close()


def copy_policies(tmp_path: Path) -> Path:
    """A private copy of policies/ that a test may edit."""
    target = tmp_path / "policies"
    shutil.copytree(POLICIES, target)
    return target


def edit_register(policies_dir: Path, edit: Any) -> None:
    """Load register.yaml, let ``edit(register_dict)`` change it, write it back."""
    path = policies_dir / "register.yaml"
    register = yaml.safe_load(path.read_text(encoding="utf-8"))
    edit(register)
    path.write_text(yaml.safe_dump(register, sort_keys=False), encoding="utf-8")
