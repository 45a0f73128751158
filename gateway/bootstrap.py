"""First-run set-up of ``var/``: keys, and for development the PKI and demo records.

Nothing here overwrites. The running gateway only loads what this creates, so a lost key
stops start-up instead of being silently replaced (which would fork the audit log or
change every pseudonym).
"""

from __future__ import annotations

from collections.abc import Callable

from audit.keys import load_or_create_log_key
from gateway import demo_data
from gateway.connectors.catalog import Catalog
from gateway.pki import init_pki
from gateway.pseudonyms import load_or_create_master_key
from gateway.settings import Settings
from gateway.signing import load_signer


def create_keys(settings: Settings, echo: Callable[[str], None] = print) -> None:
    """Create the missing ones of the gateway's own keys: the pseudonymisation master
    secret, the receipt signing key and the audit log key (production and development)."""
    echo(f"· keys in {settings.keys_dir}")
    load_or_create_master_key(settings.keys_dir)
    load_signer(settings.keys_dir)
    load_or_create_log_key(settings.keys_dir)


def bootstrap(settings: Settings, echo: Callable[[str], None] = print) -> None:
    """Create whatever development state is missing under ``settings.var_dir``."""
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    catalog = Catalog.load(settings.connectors_dir, settings.var_dir)
    echo(f"· development PKI in {settings.pki_dir}")
    report = init_pki(settings.pki_dir, sorted(catalog.partners))
    for path in report.created:
        echo(f"  created {path}")
    create_keys(settings, echo)
    echo(f"· synthetic demo records in {settings.demo_data_dir}")
    demo_data.ensure(settings.var_dir, catalog)
