"""The DPO's subject access and re-identification commands (``doelpoort audit subject``,
``doelpoort audit reidentify``) and the DPO subject key (``doelpoort keys subject-ref``).

``audit subject`` runs offline on a copy of the log with the DPO's own copies of the
subject key (and of the legacy key, for entries logged before it): no gateway, no master
secret. ``audit reidentify`` goes through the DPO API, which records the release as an
audit entry before it hands over the escrow, and opens the escrow here, offline, with the
DPO's private key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gateway._cli_common import VarDir, fail, open_reader, settings_for
from gateway._cli_gateway import (
    Ca,
    Cert,
    Gateway,
    GatewayError,
    LogKeyFile,
    NotProven,
    TlsKey,
    Url,
    log_key_for,
    proven_entry,
)

if TYPE_CHECKING:
    from gateway.dpo.subject_access import SubjectAccess


def register(audit_app: typer.Typer, keys_app: typer.Typer) -> None:
    """Add this module's commands to the ``audit`` and ``keys`` groups."""
    audit_app.command("subject")(audit_subject)
    audit_app.command("reidentify")(audit_reidentify)
    keys_app.command("subject-ref")(keys_subject_ref)


# -- doelpoort keys subject-ref -------------------------------------------------------------


def keys_subject_ref(
    export: Annotated[
        Path,
        typer.Option(
            "--export",
            help="Write the DPO's copy of the subject key to FILE (mode 0600; never "
            "overwrites). Keep it offline: `doelpoort audit subject --key FILE`.",
            dir_okay=False,
        ),
    ],
    legacy: Annotated[
        bool,
        typer.Option(
            "--legacy",
            help="Write instead the key the entries logged before the subject key were "
            "made with (derived from the master secret, which it does not reveal).",
        ),
    ] = False,
    var_dir: VarDir = None,
) -> None:
    """Hand the DPO a copy of the subject key, or of the legacy one."""
    from gateway.keys import (
        SUBJECT_REF_KEY_FILE,
        export_subject_ref_key,
        load_master_key,
        read_subject_ref_key,
    )
    from gateway.subject_refs import SubjectRefKey, legacy_key_bytes

    keys_dir = settings_for(var_dir).keys_dir
    if legacy:
        key = legacy_key_bytes(load_master_key(keys_dir))
        what = "the legacy subject key (entries logged before the subject key)"
    else:
        key = read_subject_ref_key(keys_dir / SUBJECT_REF_KEY_FILE)
        what = "the subject key"
    export_subject_ref_key(export, key)
    typer.echo(f"wrote {export}: {what}, key id {SubjectRefKey(key).kid}")
    typer.echo("keep it offline; search a copy of the log with `doelpoort audit subject --key`")


# -- doelpoort audit subject ----------------------------------------------------------------


def audit_subject(
    key: Annotated[
        list[Path],
        typer.Option(
            "--key",
            help="A copy of the DPO subject key (`keys subject-ref --export`); repeat it for "
            "the legacy key too, so entries logged before the subject key are found.",
            dir_okay=False,
        ),
    ],
    bsn: Annotated[str | None, typer.Option("--bsn", help="The subject's BSN.")] = None,
    v_number: Annotated[str | None, typer.Option("--v-number", help="Their v-number.")] = None,
    passport_no: Annotated[
        str | None, typer.Option("--passport-no", help="Their passport number.")
    ] = None,
    iban: Annotated[str | None, typer.Option("--iban", help="Their IBAN.")] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Their name (with --date-of-birth).")
    ] = None,
    date_of_birth: Annotated[
        str | None, typer.Option("--date-of-birth", help="YYYY-MM-DD (with --name).")
    ] = None,
    html: Annotated[
        Path | None, typer.Option("--html", help="Write the report as HTML.", dir_okay=False)
    ] = None,
    pdf: Annotated[
        Path | None, typer.Option("--pdf", help="Write the report as PDF.", dir_okay=False)
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the decisions as JSON.")] = False,
    var_dir: VarDir = None,
) -> None:
    """Every decision about one data subject: to whom, when, for which purpose, under
    which legal basis, what was released in which form. Offline: reads the log only,
    with your copies of the subject key; needs no gateway and no master secret."""
    from gateway.dpo.subject_access import (
        identified_by,
        render_subject_report,
        subject_decisions,
        validated_identity,
    )
    from gateway.errors import InvalidRequest
    from gateway.subject_refs import load_subject_ref_key

    if (name is None) != (date_of_birth is None):
        given, missing = ("--name", "--date-of-birth") if name else ("--date-of-birth", "--name")
        raise fail(
            f"{given} needs {missing}: a name and a date of birth identify a subject only together",
            2,
        )
    fields = {
        "bsn": bsn,
        "v_number": v_number,
        "passport_no": passport_no,
        "iban": iban,
        "name": name,
        "date_of_birth": date_of_birth,
    }
    try:
        identity = validated_identity({k: v for k, v in fields.items() if v is not None})
    except InvalidRequest as exc:
        raise fail(exc.detail, 2) from exc
    keys = [load_subject_ref_key(path) for path in key]
    refs = sorted({ref for k in keys for ref in k.refs(identity)})
    settings = settings_for(var_dir)
    with open_reader(settings) as reader:
        access = subject_decisions(
            reader, refs, identified_by=identified_by(identity), keys=len(keys)
        )
    for path, fmt in ((html, "html"), (pdf, "pdf")):
        if path is not None:
            try:
                path.write_bytes(render_subject_report(access, "pdf" if fmt == "pdf" else "html"))
            except OSError as exc:
                raise fail(f"cannot write {path}: {exc.strerror or exc}", 2) from exc
            typer.echo(f"wrote {path}", err=True)
    if as_json:
        typer.echo(json.dumps(access.as_json(), ensure_ascii=False, indent=2))
    else:
        _print_summary(access)


def _print_summary(access: SubjectAccess) -> None:
    typer.echo(
        f"{len(access.requests)} requests ({access.decisions} dataset decisions) about the "
        f"subject identified by {', '.join(access.identified_by)}"
    )
    for request in access.requests:
        verdicts = ", ".join(f"{d.dataset or '-'} {d.decision}" for d in request.decisions)
        typer.echo(
            f"  {request.time}  {request.requester}  {request.purpose}  "
            f"[{request.case_ref}]  {verdicts}  (entries "
            f"{', '.join(str(d.seq) for d in request.decisions)})"
        )


# -- doelpoort audit reidentify -------------------------------------------------------------


def audit_reidentify(
    seq: Annotated[
        int, typer.Argument(min=1, max=2**63 - 1, help="The audit entry's sequence number.")
    ],
    key: Annotated[
        Path,
        typer.Option("--key", help="The DPO's private escrow key.", dir_okay=False),
    ],
    reason: Annotated[
        str,
        typer.Option(
            "--reason",
            help="Why you open it (a case or complaint reference in words; never an "
            "identifier): recorded in the audit log, in clear, before the escrow is released.",
        ),
    ],
    pseudonym: Annotated[
        str | None, typer.Option(help="Print only what this pseudonym stood for.")
    ] = None,
    log_key: LogKeyFile = None,
    url: Url = None,
    cert: Cert = None,
    tls_key: TlsKey = None,
    ca: Ca = None,
    var_dir: VarDir = None,
) -> None:
    """DPO: open an entry's escrow; print the request's justification and what the
    entry's pseudonyms stood for.

    The gateway releases the escrow through the DPO API only after recording the release
    (you, the entry, your reason) as an audit entry. Anyone with the public escrow key can
    seal a false escrow, so only the signed log vouches for a real one: the entry is
    proved to be in a checkpoint signed by the log key you hold (its inclusion proof),
    and the escrow is opened here, offline, only if its digest is the one that entry holds.
    """
    from audit.entry import AuditRecord, escrow_digest, record_from_body
    from gateway.errors import EscrowError
    from gateway.escrow import open_escrow
    from gateway.keys import read_escrow_private_key

    private_key = read_escrow_private_key(key)  # before anything is released
    settings = settings_for(var_dir)
    log = log_key_for(settings, log_key)
    gateway = Gateway.connect(settings, url, cert, tls_key, ca)
    try:
        answer = gateway.release_escrow(seq, reason)
        typer.echo(
            f"the release is recorded as audit entry {answer.get('reidentification_seq')}",
            err=True,
        )
        escrow = answer.get("escrow")
        if answer.get("seq") != seq or not isinstance(escrow, str):
            raise fail(f"the gateway's answer for entry {seq} is not one this version reads")
        entry = proven_entry(gateway, log, seq)
    except GatewayError as exc:
        code = 2 if "answered 404" in str(exc) or "answered 422" in str(exc) else 1
        raise fail(str(exc), code) from exc
    except NotProven as exc:
        raise fail(f"entry {seq} is NOT proved to be in the signed log: {exc}") from exc
    finally:
        gateway.close()
    try:
        record = record_from_body(entry.body)
    except (TypeError, ValueError) as exc:
        raise fail(f"entry {seq} is not an audit record this version can read") from exc
    if not isinstance(record, AuditRecord) or escrow_digest(escrow) != record.escrow_sha256:
        raise fail(
            f"entry {seq}: the escrow the gateway released is not the one it was logged with"
        )
    try:
        content = open_escrow(escrow, private_key)
    except EscrowError as exc:
        raise fail(f"entry {seq}: {exc}") from exc
    # The escrow covers every dataset of the disclosure; show this entry's only.
    pairs = content.pseudonyms.get(record.dataset, {})
    if pseudonym is not None:
        if pseudonym not in pairs:
            raise fail(f"entry {seq} did not release {pseudonym}", 2)
        pairs = {pseudonym: pairs[pseudonym]}
    shown = {"justification": content.justification, "pseudonyms": pairs}
    typer.echo(json.dumps(shown, ensure_ascii=False, indent=2))
