"""A running gateway's parts, built from :class:`~gateway.settings.Settings`.

Start-up fails loudly on a bad deployment (unreadable connectors, a policy that does
not compile, a register that does not fit the connector catalog, a missing key); after
that, every failure is a per-request problem. Start-up only ever loads keys: creating
them is ``doelpoort keys init`` and ``setup`` (`gateway.keys`), so a lost audit key or
master secret stops the gateway instead of being silently replaced (which would fork the
audit log or change every pseudonym).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from audit.clock import Clock, utc_now
from audit.store import AuditStore
from gateway.api_models import DisclosureRequest, request_model
from gateway.connectors.catalog import Catalog
from gateway.disclosure import DisclosureService
from gateway.errors import ConfigurationError
from gateway.escrow import load_escrow_sealer
from gateway.keys import (
    ESCROW_PUBLIC_KEY_FILE,
    load_log_key,
    load_master_key,
    load_receipt_keys,
)
from gateway.metrics import Metrics
from gateway.policy.bundle import compile_bundle
from gateway.policy.check import require_clean
from gateway.policy.engine import EmbeddedEngine, PolicyEngine
from gateway.policy.probe import probe_inputs
from gateway.policy.register import REGISTER_FILE, Register
from gateway.pseudonyms import PseudonymKeys
from gateway.refusals import RefusalLog
from gateway.settings import Settings
from gateway.signing import ReceiptSigner
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
    register: Register
    engine: PolicyEngine
    audit: AuditStore
    signer: ReceiptSigner
    metrics: Metrics
    revocations: RevocationList
    admission: Admission
    disclosures: DisclosureService
    refusals: RefusalLog
    #: What a request must look like here: the case_ref formats are the register's.
    request_model: type[DisclosureRequest]
    _sweeper: asyncio.Task[None] | None = field(default=None, repr=False)

    @classmethod
    async def start(cls, settings: Settings, *, clock: Clock = utc_now) -> Runtime:
        # Whatever start-up opens is closed again if a later step fails or is cancelled:
        # the audit log's writer lock above all, or a retry in this process finds it taken.
        async with contextlib.AsyncExitStack() as opened:
            catalog = Catalog.load(settings.connectors_dir, settings.var_dir)
            opened.push_async_callback(catalog.aclose)
            # `doelpoort policy check`: any finding stops start-up, listed.
            require_clean(settings.policies_dir, catalog)
            bundle = compile_bundle(settings.policies_dir)
            register = bundle.register  # the very register the policy was compiled with
            try:
                register.check_against(catalog)
            except ConfigurationError as exc:
                register_file = settings.policies_dir / REGISTER_FILE
                raise ConfigurationError(f"{register_file}: {exc.detail}") from exc
            pseudonyms = PseudonymKeys(load_master_key(settings.keys_dir))
            signer = ReceiptSigner(*load_receipt_keys(settings.keys_dir))
            log_key = load_log_key(settings.keys_dir)
            escrow = load_escrow_sealer(settings.keys_dir)
            engine = EmbeddedEngine(bundle, timeout_s=settings.policy_timeout_s)
            opened.push_async_callback(engine.aclose)
            # A policy that decides no ordinary request stops start-up, not every request.
            await engine.probe(probe_inputs(register, catalog, clock()))
            revocations, admission = _admission(PkiPaths(settings.pki_dir), catalog)
            audit = AuditStore.open(
                settings.audit_db_path,
                log_key=log_key,
                origin=settings.origin,
                now=clock,
            )
            opened.callback(audit.close)
            metrics = Metrics()
            runtime = cls(
                settings=settings,
                catalog=catalog,
                register=register,
                engine=engine,
                audit=audit,
                signer=signer,
                metrics=metrics,
                revocations=revocations,
                admission=admission,
                disclosures=DisclosureService(
                    catalog=catalog,
                    register=register,
                    engine=engine,
                    pseudonyms=pseudonyms,
                    audit=audit,
                    signer=signer,
                    metrics=metrics,
                    escrow=escrow,
                    clock=clock,
                ),
                refusals=RefusalLog(
                    audit,
                    per_minute=settings.refusals_per_minute,
                    # Names this deployment knows are kept in refusal entries as they are.
                    known=lambda name: name in register.purposes or name in catalog.datasets,
                    clock=clock,
                ),
                request_model=request_model(register.case_ref_formats),
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

    def readiness(self) -> dict[str, bool]:
        return {"policy_engine": self.engine.ready(), "audit_store": self.audit.healthy()}

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await self.engine.aclose()
        await self.catalog.aclose()
        await self.refusals.aclose()  # its last summaries, while the log is open
        self.audit.close()


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
