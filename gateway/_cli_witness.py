"""The DPO's independent witness (``doelpoort witness``) and receipt verification
(``doelpoort receipt verify``)."""

from __future__ import annotations

import typer


def register(app: typer.Typer, receipt_app: typer.Typer) -> None:
    """Add the ``witness`` group to ``app`` and ``verify`` to the ``receipt`` group."""
