"""A running gateway's parts, built from :class:`~gateway.settings.Settings`.

Start-up fails loudly on a bad deployment (unreadable connectors, a policy that does
not compile, a missing key); after that, every failure is a per-request problem.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from audit.keys import load_or_create_log_key
from audit.store import AuditStore
from gateway.clock import Clock, utc_now
from gateway.connectors.catalog import Catalog
from gateway.disclosure import DisclosureService
from gateway.identity import RevocationList
from gateway.metrics import Metrics
from gateway.pki import PkiPaths
from gateway.policy.bundle import compile_bundle
from gateway.policy.engine import EmbeddedEngine, PolicyEngine
from gateway.policy.register import Register
from gateway.pseudonyms import PseudonymKeys, load_or_create_master_key
from gateway.settings import Settings
from gateway.signing import ReceiptSigner, load_signer

log = logging.getLogger("doelpoort.runtime")

LOG_KEY_NAME = "doelpoort-audit"


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
    disclosures: DisclosureService

    @classmethod
    async def start(cls, settings: Settings, *, clock: Clock = utc_now) -> Runtime:
        catalog = Catalog.load(settings.connectors_dir, settings.var_dir)
        bundle = compile_bundle(settings.policies_dir)
        register = bundle.register  # the very register the policy was compiled with
        engine = EmbeddedEngine(bundle, timeout_s=settings.policy_timeout_s)
        pseudonyms = PseudonymKeys(load_or_create_master_key(settings.keys_dir))
        signer = load_signer(settings.keys_dir)
        audit = AuditStore.open(
            settings.audit_db_path,
            log_key=load_or_create_log_key(settings.keys_dir),
            origin=settings.origin,
            key_name=LOG_KEY_NAME,
        )
        metrics = Metrics()
        pki = PkiPaths(settings.pki_dir)
        revocations = RevocationList(pki.crl, pki.ca_cert)
        disclosures = DisclosureService(
            catalog=catalog,
            register=register,
            engine=engine,
            pseudonyms=pseudonyms,
            audit=audit,
            signer=signer,
            metrics=metrics,
            clock=clock,
        )
        log.info("gateway ready: policy %s", engine.digest)
        return cls(
            settings=settings,
            catalog=catalog,
            register=register,
            engine=engine,
            audit=audit,
            signer=signer,
            metrics=metrics,
            revocations=revocations,
            disclosures=disclosures,
        )

    def readiness(self) -> dict[str, bool]:
        return {"policy_engine": self.engine.ready(), "audit_store": self.audit.healthy()}

    async def close(self) -> None:
        await self.engine.aclose()
        await self.catalog.aclose()
        self.audit.close()
