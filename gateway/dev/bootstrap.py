"""First-run set-up of ``var/``: keys, and for development the PKI and demo records.

Nothing here overwrites. The running gateway only loads what this creates, so a lost key
stops start-up instead of being silently replaced (which would fork the audit log or
change every pseudonym).
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.connectors.catalog import Catalog
from gateway.dev import demo_data
from gateway.dev.pki import init_pki
from gateway.keys import (
    SUBJECT_REF_KEY_FILE,
    create_escrow_keys,
    create_keys,
    export_subject_ref_key,
    read_subject_ref_key,
)
from gateway.settings import Settings


def bootstrap(settings: Settings, echo: Callable[[str], None] = print) -> None:
    """Create whatever development state is missing under ``settings.var_dir``."""
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    catalog = Catalog.load(settings.connectors_dir, settings.var_dir)
    echo(f"· development PKI in {settings.pki_dir}")
    report = init_pki(settings.pki_dir, sorted(catalog.partners))
    for path in report.created:
        echo(f"  created {path}")
    create_keys(settings.keys_dir, settings.audit_db_path, echo)
    # In production the DPO makes this pair offline (`doelpoort keys escrow`) and only the
    # public half is installed; here the private half stays under var/dpo/.
    if (escrow := create_escrow_keys(settings.dpo_dir, settings.keys_dir)) is not None:
        echo(f"  created {escrow.public} (the DPO's private half: {escrow.private})")
    # Likewise the DPO's copy of the subject key (`doelpoort keys subject-ref --export`).
    dpo_copy = settings.dpo_dir / SUBJECT_REF_KEY_FILE
    if not dpo_copy.exists():
        key = read_subject_ref_key(settings.keys_dir / SUBJECT_REF_KEY_FILE)
        export_subject_ref_key(dpo_copy, key)
        echo(f"  created {dpo_copy} (the DPO's copy of the subject key)")
    echo(f"· synthetic demo records in {settings.demo_data_dir}")
    demo_data.ensure(settings.var_dir, catalog)
