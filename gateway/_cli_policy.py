"""``doelpoort policy``: the policy authors' tools (check, test, eval, replay, diff, bundle).

Each command is a thin shell over a module of `gateway.policy`; this file only parses
arguments and prints. `gateway._cli` adds the group to the ``doelpoort`` command.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from audit.reader import AuditReader
    from gateway.connectors.catalog import Catalog
    from gateway.policy.sets import NamedSet

policy_app = typer.Typer(
    help="Policy authors' tools: check, test, explain, replay, diff and bundle policy sets.",
    no_args_is_help=True,
)


# -- diff, show, list: the archive of policy sets (issue 13, point 2) -------------------

_AuditDbOption = Annotated[
    Path | None,
    typer.Option(
        "--audit-db",
        help="The audit log whose archive to read (read-only; default: var/audit.sqlite3).",
        dir_okay=False,
    ),
]
_ConnectorsOption = Annotated[
    Path | None,
    typer.Option(
        "--connectors",
        help="The connector catalog a policy directory is read with (default: connectors/).",
        file_okay=False,
    ),
]


def _fail(message: str, code: int) -> typer.Exit:
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(code)


class _Sources:
    """The archive and the catalog, opened once and only when a name needs them."""

    def __init__(self, audit_db: Path | None, connectors: Path | None) -> None:
        from gateway.settings import Settings

        self._settings = Settings.from_env()
        self._audit_db = audit_db or self._settings.audit_db_path
        self._connectors = connectors or self._settings.connectors_dir
        self._reader: AuditReader | None = None
        self._catalog: Catalog | None = None

    def archive(self) -> AuditReader:
        from audit.reader import AuditReader
        from gateway.errors import AuditError

        if self._reader is None:
            try:
                self._reader = AuditReader(self._audit_db)
            except AuditError as exc:
                raise _fail(f"no audit log at {self._audit_db}", 2) from exc
        return self._reader

    def catalog(self) -> Catalog:
        from gateway.connectors.catalog import Catalog

        if self._catalog is None:
            self._catalog = Catalog.load(self._connectors, self._settings.var_dir)
        return self._catalog

    def resolve(self, name: str, *, trouble: int, directories: bool = True) -> NamedSet:
        """The set `name` names; exit `trouble` when it cannot be read (2 for an unknown
        name)."""
        import sqlite3

        from gateway.errors import DoelpoortError
        from gateway.policy.sets import UnknownPolicySet, resolve

        try:
            return resolve(
                name, archive=self.archive, catalog=self.catalog, directories=directories
            )
        except UnknownPolicySet as exc:
            raise _fail(str(exc), 2) from exc
        except DoelpoortError as exc:  # a changed archived set, an unreadable directory
            raise _fail(str(exc), trouble) from exc
        except sqlite3.DatabaseError as exc:
            raise _fail(f"the audit database cannot be read: {exc}", trouble) from exc

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()


@policy_app.command("diff")
def policy_diff(
    a: Annotated[str, typer.Argument(help="A digest in the archive, or a policy directory.")],
    b: Annotated[str, typer.Argument(help="Another digest or policy directory.")],
    audit_db: _AuditDbOption = None,
    connectors: _ConnectorsOption = None,
) -> None:
    """Show what changed between two policy sets: a unified diff per file (catalog.json
    indented), with a summary on stderr. Exit 0 when identical, 1 when they differ, 2 on
    an unknown digest or a set that cannot be read."""
    from gateway.policy.sets import diff_sets

    sources = _Sources(audit_db, connectors)
    try:
        diff = diff_sets(sources.resolve(a, trouble=2), sources.resolve(b, trouble=2))
    finally:
        sources.close()
    for line in diff.unified():
        typer.echo(line, nl=False)
    typer.echo(f"A {diff.a.digest} ({diff.a.origin})", err=True)
    typer.echo(f"B {diff.b.digest} ({diff.b.origin})", err=True)
    if diff.identical:
        typer.echo("the policy sets are identical", err=True)
        return
    for what, paths in (
        ("changed", diff.changed),
        ("added", diff.added),
        ("removed", diff.removed),
    ):
        if paths:
            typer.echo(f"{what}: {', '.join(paths)}", err=True)
    raise typer.Exit(1)


@policy_app.command("show")
def policy_show(
    digest: Annotated[str, typer.Argument(help="The digest of an archived policy set.")],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write the set's files into this new (or empty) directory instead.",
            file_okay=False,
        ),
    ] = None,
    audit_db: _AuditDbOption = None,
) -> None:
    """Print an archived policy set, exactly the text that made the decisions whose
    entries name its digest; or write it out with --output. Exit 2 on an unknown digest."""
    from gateway.errors import ConfigurationError
    from gateway.policy.sets import write_set

    sources = _Sources(audit_db, None)
    try:
        found = sources.resolve(digest, trouble=1, directories=False)
    finally:
        sources.close()
    if output is None:
        for path, content in sorted(found.files.items()):
            typer.echo(f"==> {path} <==")
            typer.echo(content, nl=not content.endswith("\n"))
        return
    try:
        written = write_set(found.files, output)
    except ConfigurationError as exc:
        raise _fail(str(exc), 2) from exc
    except OSError as exc:
        raise _fail(f"cannot write {output}: {exc.strerror or exc}", 1) from exc
    typer.echo(f"wrote {len(written)} files of {found.digest} to {output}", err=True)


@policy_app.command("list")
def policy_list(
    audit_db: _AuditDbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
) -> None:
    """List the archived policy sets, with when the gateway first used each, earliest
    first."""
    import json

    sources = _Sources(audit_db, None)
    try:
        archived = sources.archive().policy_sets()
    finally:
        sources.close()
    if as_json:
        document = [{"digest": s.digest, "first_used": s.first_used} for s in archived]
        typer.echo(json.dumps(document, indent=2))
        return
    for found in archived:
        typer.echo(f"{found.digest}  first used {found.first_used}")
    if not archived:
        typer.echo("the archive holds no policy set yet", err=True)
