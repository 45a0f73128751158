"""Performance measurements of SPEC §10 (`make bench`)."""
