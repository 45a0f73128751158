"""First-run set-up of ``var/``: keys, and for development the PKI and demo records.

Nothing here overwrites. The running gateway only loads what this creates, so a lost key
stops start-up instead of being silently replaced (which would fork the audit log or
change every pseudonym).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from audit.keys import PRIVATE_KEY_FILE as LOG_KEY_FILE
from audit.keys import load_or_create_log_key
from gateway import demo_data
from gateway.connectors.catalog import Catalog
from gateway.errors import ConfigurationError
from gateway.escrow import create_escrow_keys
from gateway.pki import init_pki
from gateway.pseudonyms import MASTER_KEY_FILE, load_or_create_master_key
from gateway.settings import Settings
from gateway.signing import current_key_file, load_signer


def create_keys(settings: Settings, echo: Callable[[str], None] = print) -> None:
    """Create the missing ones of the gateway's own keys: the pseudonymisation master
    secret, the receipt signing key and the audit log key (production and development).

    Only for a new deployment: once there is an audit log, a missing key is a lost one,
    and a new one would change every pseudonym, fork the log's signatures or orphan every
    receipt. Then nothing is created and the error says to restore it from a backup.
    """
    echo(f"· keys in {settings.keys_dir}")
    keys = settings.keys_dir
    needed = (keys / MASTER_KEY_FILE, keys / LOG_KEY_FILE, current_key_file(keys))
    lost = [path for path in needed if not path.exists()]
    if lost and settings.audit_db_path.exists():
        raise ConfigurationError(
            f"{', '.join(map(str, lost))} missing, but this deployment already has an audit"
            f" log ({settings.audit_db_path}): restore the key from a backup. A new one would"
            " change every pseudonym, fork the log's signatures or orphan every receipt."
        )
    before = _files(settings.keys_dir)
    load_or_create_master_key(settings.keys_dir)
    load_signer(settings.keys_dir)
    load_or_create_log_key(settings.keys_dir)
    for path in sorted(_files(settings.keys_dir) - before):
        echo(f"  created {path}")


def _files(directory: Path) -> set[Path]:
    return {p for p in directory.rglob("*") if p.is_file()} if directory.is_dir() else set()


def bootstrap(settings: Settings, echo: Callable[[str], None] = print) -> None:
    """Create whatever development state is missing under ``settings.var_dir``."""
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    catalog = Catalog.load(settings.connectors_dir, settings.var_dir)
    echo(f"· development PKI in {settings.pki_dir}")
    report = init_pki(settings.pki_dir, sorted(catalog.partners))
    for path in report.created:
        echo(f"  created {path}")
    create_keys(settings, echo)
    # In production the DPO makes this pair offline (`doelpoort keys escrow`) and only the
    # public half is installed; here the private half stays under var/dpo/.
    if (escrow := create_escrow_keys(settings.dpo_dir, settings.keys_dir)) is not None:
        echo(f"  created {escrow.public} (the DPO's private half: {escrow.private})")
    echo(f"· synthetic demo records in {settings.demo_data_dir}")
    demo_data.ensure(settings.var_dir, catalog)
