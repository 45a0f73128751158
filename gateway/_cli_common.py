"""What every ``doelpoort`` command shares: its settings, its one-line failure, the audit
log opened for reading. `gateway._cli` and `gateway._cli_policy` both use these; the
policy group is a module of its own, so they cannot live in `gateway._cli`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gateway.settings import Settings

if TYPE_CHECKING:
    from audit.reader import AuditReader


VarDir = Annotated[
    Path | None, typer.Option("--var-dir", help="Runtime state directory (default: var/).")
]
"""Every command's ``--var-dir``."""


def settings_for(var_dir: Path | None = None) -> Settings:
    """The settings from the environment, with ``--var-dir`` when it was given."""
    settings = Settings.from_env()
    return settings.with_var_dir(var_dir) if var_dir is not None else settings


def fail(message: str, code: int = 1) -> typer.Exit:
    """The message in red on stderr, and the exit to raise."""
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def open_reader(settings: Settings) -> AuditReader:
    """The audit log for reading; exit 2 when there is none (a reader never creates one)."""
    from audit.reader import AuditReader
    from gateway.errors import AuditError

    try:
        return AuditReader(settings.audit_db_path)
    except AuditError as exc:
        raise fail(f"no audit log at {settings.audit_db_path}", 2) from exc
