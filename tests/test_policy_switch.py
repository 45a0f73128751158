"""Swapping a running gateway's policy set (gateway/policy_switch.py), in-process: a real
Runtime on a set-up deployment (real SQLite log, real regopy), its files changed under it.

The end-to-end runs — ``doelpoort serve`` in its own process, SIGHUP, mutual TLS — are
tests/test_serve_reload.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import shutil
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from audit.entry import PolicyChangeRecord, record_from_body
from audit.reader import AuditReader
from gateway.dev.bootstrap import bootstrap
from gateway.dev.demo import load_subjects
from gateway.errors import ConfigurationError, PolicyUnavailable
from gateway.policy.bundle import compile_bundle, policy_digest
from gateway.policy.opa_bundle import generate_signing_key, write_bundle
from gateway.policy.sources import BundleSource, Candidate, DirectorySource
from gateway.runtime import Runtime
from gateway.settings import Settings
from tests.gateway_support import copy_tree, make_settings
from tests.policy.policy_support import demo_catalog

UNKNOWN_DIGEST = "sha256:" + "0" * 64


@pytest.fixture(scope="module")
def set_up(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = make_settings(tmp_path_factory.mktemp("deployment") / "var")
    bootstrap(settings, echo=lambda _line: None)
    return settings


@pytest.fixture
def settings(set_up: Settings, tmp_path: Path) -> Settings:
    """A private copy of the deployment, serving its own copy of the policies."""
    var = tmp_path / "var"
    shutil.copytree(set_up.var_dir, var)
    return make_settings(var, policies_dir=copy_tree("policies", tmp_path)).replace(
        policy_watch_s=0
    )


def running(settings: Settings, test: Callable[[Runtime], Awaitable[None]]) -> None:
    async def run() -> None:
        runtime = await Runtime.start(settings)
        try:
            await test(runtime)
        finally:
            await runtime.close()

    asyncio.run(run())


def edit_register(policies: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    path = policies / "register.yaml"
    register = yaml.safe_load(path.read_text(encoding="utf-8"))
    edit(register)
    path.write_text(yaml.safe_dump(register, sort_keys=False), encoding="utf-8")


def tighten(register: dict[str, Any]) -> None:
    """ct-assessment no longer releases nationality of ind/residence."""
    del register["purposes"]["ct-assessment"]["datasets"]["ind/residence"]["field_ops"][
        "nationality"
    ]


def break_syntax(policies: Path) -> None:
    rego = policies / "doelpoort" / "deny.rego"
    rego.write_text(rego.read_text(encoding="utf-8") + "\ndeny contains if {\n", encoding="utf-8")


def policy_changes(settings: Settings) -> list[PolicyChangeRecord]:
    with AuditReader(settings.audit_db_path) as reader:
        records = [record_from_body(entry.body) for entry in reader.iter_entries()]
    return [r for r in records if isinstance(r, PolicyChangeRecord)]


async def disclose(runtime: Runtime, settings: Settings, **extra: Any) -> dict[str, Any]:
    """Ask as the police for ct-assessment of ind/residence through the serving set, as
    the partner API does; the signed disclosure."""
    body = {
        "purpose": "ct-assessment",
        "case_ref": "CTI-2026-0042",
        "justification": "reload test",
        "subject": load_subjects(settings)["ct_subject"],
        "datasets": ["ind/residence"],
        **extra,
    }
    with runtime.policy.in_use() as policy:
        request = policy.request_model.from_body(json.dumps(body).encode())
        receipt = await policy.disclosures.disclose(runtime.catalog.partners["politie"], request)
    disclosure: dict[str, Any] = json.loads(receipt.payload)
    return disclosure


def test_a_tightened_register_is_swapped_in_and_on_record(settings: Settings) -> None:
    async def test(runtime: Runtime) -> None:
        old = runtime.policy
        before = await disclose(runtime, settings)
        assert before["policy_digest"] == old.digest
        assert "nationality" in before["results"][0]["field_ops"]

        edit_register(settings.policies_dir, tighten)
        assert await runtime.policies.reload("sighup") == "swapped"

        new = runtime.policy
        assert (
            new.digest == compile_bundle(settings.policies_dir, demo_catalog()).digest != old.digest
        )
        after = await disclose(runtime, settings)
        assert after["policy_digest"] == new.digest
        assert "nationality" not in after["results"][0]["field_ops"]
        # Everything that decides switched together.
        assert runtime.engine is new.engine is runtime.disclosures.engine
        assert runtime.register is new.register is runtime.disclosures.register
        assert "nationality" not in (
            runtime.register.purposes["ct-assessment"].datasets["ind/residence"].field_ops
        )
        status = runtime.policies.status()
        assert status["digest"] == new.digest
        assert status["last_reload"]["outcome"] == "swapped"
        await asyncio.sleep(0.05)  # the old set, held by no request, is closed
        assert not old.engine.ready()

    running(settings, test)
    (change,) = policy_changes(settings)
    assert (change.trigger, change.source, change.outcome, change.reasons) == (
        "sighup",
        "directory",
        "swapped",
        [],
    )
    assert change.new_digest == compile_bundle(settings.policies_dir, demo_catalog()).digest
    assert change.old_digest != change.new_digest


def test_case_ref_formats_and_known_names_switch_with_the_register(settings: Settings) -> None:
    def widen(register: dict[str, Any]) -> None:
        register["case_ref_formats"].append(
            {"name": "screening", "pattern": "SCR[0-9]{3}", "example": "SCR123"}
        )
        register["purposes"]["screening-20260"] = register["purposes"]["ct-assessment"]

    async def refused_purpose(runtime: Runtime) -> str | None:
        body = b'{"purpose": "screening-20260"}'
        await runtime.refusals.record(
            "politie", "invalid-request", 422, method="POST", route="/v1/disclosures", body=body
        )
        with AuditReader(settings.audit_db_path) as reader:
            last = list(reader.iter_entries())[-1]
        purpose: str | None = json.loads(last.body)["purpose"]
        return purpose

    async def test(runtime: Runtime) -> None:
        with pytest.raises(ValueError, match="case_ref"):
            await disclose(runtime, settings, case_ref="SCR123")
        # Five digits in a name no one knows could be an identifier: not kept.
        assert await refused_purpose(runtime) is None
        edit_register(settings.policies_dir, widen)
        assert await runtime.policies.reload("sighup") == "swapped"
        assert (await disclose(runtime, settings, case_ref="SCR123"))["case_ref"] == "SCR123"
        assert await refused_purpose(runtime) == "screening-20260"

    running(settings, test)


@pytest.mark.parametrize(
    ("breakage", "reason"),
    [
        pytest.param(break_syntax, "doelpoort/deny.rego:", id="syntax-error"),
        pytest.param(
            lambda policies: edit_register(
                policies,
                lambda r: r["purposes"]["vertrek"]["datasets"].update(
                    {"dji/detentoin": {"field_ops": {"name": "keep"}}}
                ),
            ),
            "register.yaml: purpose vertrek, dataset dji/detentoin: the connector catalog",
            id="unknown-dataset",
        ),
        pytest.param(
            lambda policies: (policies / "doelpoort" / "extra.rego").write_text(
                "package doelpoort.disclosure\n\nimport rego.v1\n\n"
                "zero := count(input.subject_keys) - count(input.subject_keys)\n\n"
                'deny contains sprintf("%d", [1 / zero]) if true\n',
                encoding="utf-8",
            ),
            "the policy gives no valid decision for a probe input",
            id="probe-fails",
        ),
    ],
)
def test_a_broken_set_is_refused_and_the_old_one_keeps_serving(
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
    breakage: Callable[[Path], None],
    reason: str,
) -> None:
    async def test(runtime: Runtime) -> None:
        old = runtime.policy
        breakage(settings.policies_dir)
        with caplog.at_level(logging.ERROR, logger="doelpoort.policy"):
            assert await runtime.policies.reload("sighup") == "refused"
        assert runtime.policy is old
        assert old.engine.ready()
        assert (await disclose(runtime, settings))["policy_digest"] == old.digest
        assert runtime.policies.status()["last_reload"]["outcome"] == "refused"
        assert runtime.readiness() == {"policy_engine": True, "audit_store": True}
        metrics = runtime.metrics.render().decode()
        assert "doelpoort_policy_reload_refused 1.0" in metrics
        assert 'doelpoort_policy_reloads_total{outcome="refused",trigger="sighup"} 1.0' in metrics

    running(settings, test)
    (change,) = policy_changes(settings)
    assert (change.trigger, change.outcome) == ("sighup", "refused")
    assert any(reason in r for r in change.reasons), change.reasons
    (line,) = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert line.startswith(f"policy reload (sighup) refused, still serving {change.old_digest}: ")
    assert reason in line


def test_an_unchanged_set_is_not_swapped_nor_logged(settings: Settings) -> None:
    async def test(runtime: Runtime) -> None:
        old = runtime.policy
        rego = settings.policies_dir / "doelpoort" / "deny.rego"
        rego.write_text(rego.read_text(encoding="utf-8"), encoding="utf-8")  # touched only
        assert await runtime.policies.reload("sighup") == "unchanged"
        assert runtime.policy is old
        assert old.engine.ready()

    running(settings, test)
    assert policy_changes(settings) == []


def test_a_request_in_flight_finishes_on_the_set_it_started_with(settings: Settings) -> None:
    async def test(runtime: Runtime) -> None:
        with runtime.policy.in_use() as held:
            edit_register(settings.policies_dir, tighten)
            assert await runtime.policies.reload("sighup") == "swapped"
            assert runtime.policy is not held
            await asyncio.sleep(0.05)
            assert held.engine.ready()  # not closed under the request
            request = held.request_model.from_body(
                json.dumps(
                    {
                        "purpose": "ct-assessment",
                        "case_ref": "CTI-2026-0042",
                        "justification": "in flight",
                        "subject": load_subjects(settings)["ct_subject"],
                        "datasets": ["ind/residence"],
                    }
                ).encode()
            )
            receipt = await held.disclosures.disclose(runtime.catalog.partners["politie"], request)
            disclosure = json.loads(receipt.payload)
            assert disclosure["policy_digest"] == held.digest
            assert "nationality" in disclosure["results"][0]["field_ops"]
        await asyncio.sleep(0.05)
        assert not held.engine.ready()  # closed once the last request let go
        assert runtime.engine.ready()

    running(settings, test)


def test_a_set_held_past_the_grace_is_closed_and_fails_closed(settings: Settings) -> None:
    async def test(runtime: Runtime) -> None:
        with runtime.policy.in_use() as held:
            await held.retire(grace_s=0.01)
            assert not held.engine.ready()
            with pytest.raises(PolicyUnavailable):
                await held.engine.decide({"dataset": {"fields": {}}})

    running(settings, test)


def test_a_swap_the_audit_log_cannot_record_is_refused(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[Any] = []

    async def test(runtime: Runtime) -> None:
        old = runtime.policy

        async def failing_append(records: Any, escrow: Any = None) -> list[int]:
            raise OSError("disk full")

        original = runtime.policies._new_engine

        async def recording(bundle: Any) -> Any:
            engine = await original(bundle)
            built.append(engine)
            return engine

        monkeypatch.setattr(runtime.policies, "_new_engine", recording)
        monkeypatch.setattr(runtime.audit, "append", failing_append)
        edit_register(settings.policies_dir, tighten)
        assert await runtime.policies.reload("sighup") == "refused"
        assert runtime.policy is old
        assert old.engine.ready()
        (candidate,) = built
        assert not candidate.ready()  # the vetted engine was closed, not left running
        monkeypatch.undo()
        assert await runtime.policies.reload("sighup") == "swapped"

    running(settings, test)
    assert [c.outcome for c in policy_changes(settings)] == ["swapped"]


def test_asks_during_an_attempt_are_folded_into_one_more(settings: Settings) -> None:
    async def test(runtime: Runtime) -> None:
        edit_register(settings.policies_dir, tighten)
        for _ in range(5):
            runtime.request_policy_reload("sighup")
        assert await runtime.policies.reload("sighup") == "unchanged"

    running(settings, test)
    assert [c.outcome for c in policy_changes(settings)] == ["swapped"]


def test_a_change_of_the_files_is_noticed_without_a_signal(settings: Settings) -> None:
    async def test(runtime: Runtime) -> None:
        old = runtime.policy
        edit_register(settings.policies_dir, tighten)
        for _ in range(200):
            if runtime.policy is not old:
                break
            await asyncio.sleep(0.05)
        assert runtime.policy is not old
        assert runtime.policies.status()["last_reload"]["trigger"] == "file-change"
        # A broken set is refused once, not again at every look at the same files.
        break_syntax(settings.policies_dir)
        for _ in range(200):
            if runtime.policies.status()["last_reload"]["outcome"] == "refused":
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)

    running(settings.replace(policy_watch_s=0.05), test)
    assert [(c.trigger, c.outcome) for c in policy_changes(settings)] == [
        ("file-change", "swapped"),
        ("file-change", "refused"),
    ]


def test_a_pinned_digest_is_the_only_set_that_starts_or_swaps_in(settings: Settings) -> None:
    digest = compile_bundle(settings.policies_dir, demo_catalog()).digest
    with pytest.raises(ConfigurationError, match=f"is not the pinned {UNKNOWN_DIGEST}"):
        running(settings.replace(policy_digest=UNKNOWN_DIGEST), lambda _runtime: asyncio.sleep(0))

    async def test(runtime: Runtime) -> None:
        assert runtime.policy.digest == digest
        edit_register(settings.policies_dir, tighten)
        assert await runtime.policies.reload("sighup") == "refused"
        assert runtime.policy.digest == digest

    running(settings.replace(policy_digest=digest), test)
    (change,) = policy_changes(settings)
    assert f"is not the pinned {digest}" in change.reasons[0]


def test_a_bundle_needs_its_key_and_the_reader_to_start(settings: Settings, tmp_path: Path) -> None:
    bundle = tmp_path / "policies.tar.gz"
    bundle.write_bytes(b"not checked before the settings are")
    with pytest.raises(ConfigurationError, match="only accepted signed"):
        running(settings.replace(policy_bundle=bundle), lambda _runtime: asyncio.sleep(0))


def test_files_that_change_while_vetted_are_vetted_again(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    class EditedWhileVetted(DirectorySource):
        """The policies directory, whose register an author edits once more while the
        gateway vets it (test double of an author's timing, over the real directory)."""

        edits = 0

        @contextlib.contextmanager
        def open(self) -> Iterator[Candidate]:
            with super().open() as candidate:
                yield candidate
            if EditedWhileVetted.edits == 0:
                EditedWhileVetted.edits += 1
                edit_register(self.directory, lambda r: r["purposes"].pop("vertrek"))

    async def test(runtime: Runtime) -> None:
        monkeypatch.setattr(runtime.policies, "_source", EditedWhileVetted(settings.policies_dir))
        edit_register(settings.policies_dir, tighten)
        assert await runtime.policies.reload("sighup") == "swapped"
        assert "vertrek" not in runtime.register.purposes  # the files as they ended up
        assert runtime.policy.digest == compile_bundle(settings.policies_dir, demo_catalog()).digest

    running(settings, test)
    (change,) = policy_changes(settings)  # one swap: the half-edited set was never logged
    assert change.new_digest == compile_bundle(settings.policies_dir, demo_catalog()).digest


def test_a_reload_runs_the_sets_own_rego_tests(settings: Settings) -> None:
    # The shipped tests pin the demo register; this deployment has a test of its own.
    settings = settings.replace(policy_reload_tests=True)
    for shipped in settings.policies_dir.rglob("*_test.rego"):
        shipped.unlink()
    ours = settings.policies_dir / "doelpoort" / "ours_test.rego"
    ours.write_text(
        "package doelpoort.ours_test\n\nimport rego.v1\n\n"
        "test_ct_assessment_releases_nationality if {\n"
        '\tdata.register.purposes["ct-assessment"].datasets["ind/residence"]'
        '.field_ops.nationality == "keep"\n}\n',
        encoding="utf-8",
    )

    async def test(runtime: Runtime) -> None:
        old = runtime.policy
        edit_register(settings.policies_dir, tighten)  # the test above now fails
        assert await runtime.policies.reload("sighup") == "refused"
        assert runtime.policy is old
        ours.write_text(
            "package doelpoort.ours_test\n\nimport rego.v1\n\n"
            "test_ct_assessment_keeps_nationality_back if {\n"
            '\tnot data.register.purposes["ct-assessment"].datasets["ind/residence"]'
            ".field_ops.nationality\n}\n",
            encoding="utf-8",
        )
        assert await runtime.policies.reload("sighup") == "swapped"

    running(settings, test)
    refused, swapped = policy_changes(settings)
    assert refused.outcome == "refused"
    assert refused.reasons == [
        "its Rego tests do not pass: 1 failed, 0 errors (run `doelpoort policy test` on it)"
    ]
    assert swapped.outcome == "swapped"


def test_a_candidate_that_cannot_be_unpacked_is_refused_on_record(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A signed bundle whose member paths clash (a file, and a directory of the same name
    # below it): its signature and digest hold, but unpacking it fails with an OSError.
    # Such a failure must refuse the set as any reason does, not end the attempt unseen.
    shipped = compile_bundle(settings.policies_dir, demo_catalog())
    sources = (*shipped.sources, ("doelpoort/deny.rego/extra.rego", "package extra\n"))
    clashing = dataclasses.replace(shipped, sources=sources, digest=policy_digest(sources))
    private, public = tmp_path / "signing.pem", tmp_path / "signing.pub.pem"
    generate_signing_key(private, public)
    bundle = tmp_path / "policies.tar.gz"
    write_bundle(clashing, bundle, signing_key=private.read_bytes())

    async def test(runtime: Runtime) -> None:
        old = runtime.policy
        monkeypatch.setattr(runtime.policies, "_source", BundleSource(bundle, public))
        assert await runtime.policies.reload("sighup") == "refused"
        assert runtime.policy is old
        status = runtime.policies.status()["last_reload"]
        assert (status["trigger"], status["outcome"]) == ("sighup", "refused")
        assert "doelpoort_policy_reload_refused 1.0" in runtime.metrics.render().decode()

    running(settings, test)
    (change,) = policy_changes(settings)
    assert (change.source, change.outcome, change.new_digest) == ("bundle", "refused", None)
    assert change.reasons == ["the policy set could not be read or vetted (FileExistsError)"]
