"""The DPO's subject access and re-identification commands (``doelpoort audit subject``,
``doelpoort audit reidentify``) and the DPO subject key (``doelpoort keys subject-ref``)."""

from __future__ import annotations

import typer


def register(audit_app: typer.Typer, keys_app: typer.Typer) -> None:
    """Add this module's commands to the ``audit`` and ``keys`` groups."""
