"""Development only: the development PKI, first-run set-up, the demo and its data.

A production deployment brings its own CA and keys (`doelpoort keys init`) and never
runs this code; `make lint` holds production modules to that (import-linter).

- `pki` — a development CA: server, partner and DPO certificates, CRL;
- `bootstrap` — `doelpoort setup`: PKI, keys and synthetic records under ``var/``;
- `demo_data` — the synthetic records (fictitious persons, BSNs that pass the 11-test);
- `demo` — the scripted exchange between partners (`make demo`).
"""
