"""The DPO's statistics, annual report and exports (``doelpoort audit report``,
``doelpoort audit export``)."""

from __future__ import annotations

import typer


def register(audit_app: typer.Typer) -> None:
    """Add this module's commands to the ``audit`` group."""
