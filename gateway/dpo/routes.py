"""The DPO's routes, gathered into one router that `gateway.app` includes."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.dpo import assets, console, escrows, exports, proofs, reports, subjects

__all__ = ["dpo_router"]

dpo_router = APIRouter()
dpo_router.include_router(assets.router)  # the stylesheet and script under /dpo/static/
dpo_router.include_router(console.router)
dpo_router.include_router(escrows.router)
dpo_router.include_router(subjects.router)
dpo_router.include_router(reports.router)  # statistics and the annual report
dpo_router.include_router(proofs.router)
dpo_router.include_router(exports.router)  # exports (JSONL, CSV, Logboek Dataverwerkingen)
