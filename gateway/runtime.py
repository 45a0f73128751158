"""A running gateway's parts, built from :class:`~gateway.settings.Settings`.

Start-up fails loudly on a bad deployment (unreadable connectors, a policy set that
does not pass vetting — `gateway.policy.vetting`: it does not compile, its register does
not fit the connector catalog, it is not the pinned one, it decides no ordinary request —
a missing key, a policy set the audit log cannot archive); after that, every failure is a
per-request problem, and a new policy set is swapped in only once it passed the same
vetting (`gateway.policy_switch`). Every policy set is archived in the audit log before
the gateway serves with it, so the text behind every digest an entry names can be shown. Start-up
only ever loads keys: creating them is ``doelpoort keys init`` and ``setup``
(`gateway.keys`), so a lost audit key or master secret stops the gateway instead of being
silently replaced (which would fork the audit log or change every pseudonym).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from audit.clock import Clock, utc_now
from audit.store import AuditStore
from gateway.api_models import DisclosureRequest
from gateway.connectors.catalog import Catalog
from gateway.disclosure import DisclosureService
from gateway.errors import ConfigurationError
from gateway.escrow import load_escrow_sealer
from gateway.keys import (
    ESCROW_PUBLIC_KEY_FILE,
    SUBJECT_REF_KEY_FILE,
    load_log_key,
    load_master_key,
    load_receipt_keys,
)
from gateway.metrics import Metrics
from gateway.policy.bundle import PolicyBundle
from gateway.policy.engine import EmbeddedEngine, PolicyEngine
from gateway.policy.register import Register
from gateway.policy.sources import policy_source
from gateway.policy.vetting import RELOAD_STEPS, VETTING_STEPS, Refused, Vetted, vet
from gateway.policy_switch import PolicySwitch, ServingPolicy
from gateway.pseudonyms import PseudonymKeys
from gateway.refusals import RefusalLog
from gateway.settings import Settings
from gateway.signing import ReceiptSigner
from gateway.subject_refs import SubjectRefKey, legacy_key, load_subject_ref_key
from gateway.transport.admission import Admission
from gateway.transport.identity import RevocationList
from gateway.transport.issuance import IssuanceRegister
from gateway.transport.pki_paths import PkiPaths

log = logging.getLogger("doelpoort.runtime")

ESCROW_SWEEP_INTERVAL_S = 3600.0
"""How often a running gateway erases the escrows whose retention has ended."""


@dataclass
class Runtime:
    settings: Settings
    catalog: Catalog
    audit: AuditStore
    signer: ReceiptSigner
    metrics: Metrics
    revocations: RevocationList
    admission: Admission
    refusals: RefusalLog
    #: The policy set that serves, and the swapping in of vetted new ones.
    policies: PolicySwitch
    #: The DPO subject key, and the legacy key the entries before it were keyed under:
    #: the console looks a subject up under both (gateway.subject_refs).
    subject_keys: tuple[SubjectRefKey, SubjectRefKey]
    _sweeper: asyncio.Task[None] | None = field(default=None, repr=False)

    # The serving set's parts: read `policy` once per request and use only it, so that a
    # swap in between cannot mix two sets (gateway.policy_switch).
    @property
    def policy(self) -> ServingPolicy:
        return self.policies.current

    @property
    def register(self) -> Register:
        return self.policies.current.register

    @property
    def engine(self) -> PolicyEngine:
        return self.policies.current.engine

    @property
    def disclosures(self) -> DisclosureService:
        return self.policies.current.disclosures

    @property
    def request_model(self) -> type[DisclosureRequest]:
        """What a request must look like here: the case_ref formats are the register's."""
        return self.policies.current.request_model

    @classmethod
    async def start(cls, settings: Settings, *, clock: Clock = utc_now) -> Runtime:
        # Whatever start-up opens is closed again if a later step fails or is cancelled:
        # the audit log's writer lock above all, or a retry in this process finds it taken.
        async with contextlib.AsyncExitStack() as opened:
            catalog = Catalog.load(settings.connectors_dir, settings.var_dir)
            opened.push_async_callback(catalog.aclose)

            async def new_engine(bundle: PolicyBundle) -> PolicyEngine:
                return await _policy_engine(settings, bundle)

            # The policy set is vetted as a reload vets one: compiled, checked against
            # the catalog and the pinned digest, and probed (gateway.policy.vetting).
            source = policy_source(settings)
            seen = source.fingerprint()
            with source.open() as candidate:
                vetted = await vet(
                    candidate,
                    catalog,
                    new_engine=new_engine,
                    clock=clock,
                    pinned=settings.policy_digest,
                )
            if not isinstance(vetted, Vetted):  # never Unchanged: nothing serves yet
                assert isinstance(vetted, Refused)
                where = settings.policy_bundle or settings.policies_dir
                raise ConfigurationError(
                    f"{where}: the policy set is refused (`doelpoort policy check` and"
                    f" `doelpoort policy test` say more): {'; '.join(vetted.reasons)}"
                )
            engine = vetted.engine
            opened.push_async_callback(engine.aclose)
            master = load_master_key(settings.keys_dir)
            pseudonyms = PseudonymKeys(master)
            subject_key = load_subject_ref_key(settings.keys_dir / SUBJECT_REF_KEY_FILE)
            signer = ReceiptSigner(*load_receipt_keys(settings.keys_dir))
            log_key = load_log_key(settings.keys_dir)
            escrow = load_escrow_sealer(settings.keys_dir)
            revocations, admission = _admission(PkiPaths(settings.pki_dir), catalog)
            audit = AuditStore.open(
                settings.audit_db_path,
                log_key=log_key,
                origin=settings.origin,
                now=clock,
            )
            opened.callback(audit.close)
            # Before it serves: every digest an entry names can be shown from the archive.
            await audit.archive_policy_set(vetted.bundle.digest, vetted.bundle.sources)
            metrics = Metrics()
            disclosures = DisclosureService(
                catalog=catalog,
                register=vetted.bundle.register,
                engine=engine,
                pseudonyms=pseudonyms,
                subject_key=subject_key,
                audit=audit,
                signer=signer,
                metrics=metrics,
                escrow=escrow,
                clock=clock,
            )
            policies = PolicySwitch(
                ServingPolicy.build(vetted.bundle, engine, disclosures),
                source=source,
                seen=seen,
                catalog=catalog,
                audit=audit,
                metrics=metrics,
                new_engine=new_engine,
                clock=clock,
                pinned=settings.policy_digest,
                watch_s=settings.policy_watch_s,
                steps=RELOAD_STEPS if settings.policy_reload_tests else VETTING_STEPS,
            )

            def known(name: str) -> bool:
                # The serving register's purposes: a swap changes which names are known.
                return name in policies.current.register.purposes or name in catalog.datasets

            runtime = cls(
                settings=settings,
                catalog=catalog,
                audit=audit,
                signer=signer,
                metrics=metrics,
                revocations=revocations,
                admission=admission,
                refusals=RefusalLog(
                    audit, per_minute=settings.refusals_per_minute, known=known, clock=clock
                ),
                policies=policies,
                subject_keys=(subject_key, legacy_key(master)),
            )
            # Escrows that expired while the gateway was stopped go before it serves.
            await runtime.erase_expired_escrows()
            opened.pop_all()  # started: from here on `close` releases them
        log.info(
            "gateway ready: policy %s; re-identification escrow %s",
            engine.digest,
            "on"
            if escrow is not None
            else f"off (no {settings.keys_dir / ESCROW_PUBLIC_KEY_FILE})",
        )
        runtime._sweeper = asyncio.create_task(runtime._sweep_escrows(), name="escrow-sweep")
        policies.start()
        return runtime

    async def erase_expired_escrows(self) -> None:
        """Erase the escrows whose retention has ended; a failure is logged, not raised
        (the next sweep tries again, and no disclosure depends on it)."""
        try:
            erased = await self.audit.erase_expired_escrows()
        except Exception as exc:
            log.error("expired escrows could not be erased: %s", type(exc).__name__)
            return
        if erased:
            log.info("erased %d re-identification escrows whose retention ended", erased)

    async def _sweep_escrows(self) -> None:
        while True:
            await asyncio.sleep(ESCROW_SWEEP_INTERVAL_S)
            await self.erase_expired_escrows()

    def request_policy_reload(self, trigger: str) -> None:
        """Vet the policy set as its source now offers it, and swap it in if it passes
        (on the event loop; `doelpoort serve` calls this on SIGHUP)."""
        self.policies.request(trigger)

    def readiness(self) -> dict[str, bool]:
        return {"policy_engine": self.engine.ready(), "audit_store": self.audit.healthy()}

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await self.policies.aclose()  # every policy engine, the serving one too
        await self.catalog.aclose()
        await self.refusals.aclose()  # its last summaries, while the log is open
        self.audit.close()


async def _policy_engine(settings: Settings, bundle: PolicyBundle) -> PolicyEngine:
    """The engine ``DOELPOORT_POLICY_ENGINE`` names; the OPA engine only once its server
    serves this very policy set (`gateway.policy.opa`)."""
    if settings.policy_engine == "embedded":
        return EmbeddedEngine(bundle, timeout_s=settings.policy_timeout_s)
    if settings.opa_url is None:
        raise ConfigurationError("DOELPOORT_POLICY_ENGINE=opa needs DOELPOORT_OPA_URL")
    from gateway.policy.opa import OpaEngine  # its HTTP client only where it is used

    engine = await OpaEngine.connect(bundle, settings.opa_url, timeout_s=settings.policy_timeout_s)
    log.info("policy engine: the OPA server at %s", engine.url)
    return engine


def _admission(pki: PkiPaths, catalog: Catalog) -> tuple[RevocationList, Admission]:
    """The CRL and the admission of client certificates; a gateway that could admit no
    certificate at all does not start."""
    revocations = RevocationList(pki.crl, pki.ca_cert)
    issued = IssuanceRegister(pki.issued)  # out of form: ConfigurationError, here
    partners = {partner.id: partner.certificates for partner in catalog.partners.values()}
    admission = Admission(revocations, issued, partners)
    view = issued.current()
    if view is not None and not view.present:
        if not admission.pins_any:
            raise ConfigurationError(
                f"{pki.issued} is missing and no partner has pinned certificates, so no "
                "client certificate would be admitted. With the development CA, run "
                "`doelpoort pki init` (it records the certificates of a PKI made before "
                "the register); with your own CA, pin each partner's certificates in "
                "connectors/<partner>.yaml (connectors/README.md)"
            )
        log.info("no issuance register: only certificates pinned in the catalog are admitted")
    return revocations, admission
