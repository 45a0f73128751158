"""The DPO's routes, gathered into one router that `gateway.app` includes."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.dpo import console, escrows, exports, proofs, reports, static, subjects

__all__ = ["dpo_router"]

dpo_router = APIRouter()
# Each part of the DPO's side adds its router here:
# dpo_router.include_router(<module>.router)
dpo_router.include_router(static.router)
dpo_router.include_router(console.router)
dpo_router.include_router(escrows.router)
dpo_router.include_router(subjects.router)
dpo_router.include_router(reports.router)  # statistics and the annual report
dpo_router.include_router(proofs.router)
dpo_router.include_router(exports.router)  # exports (JSONL, CSV, Logboek Dataverwerkingen)
