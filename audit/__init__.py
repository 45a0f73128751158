"""Doelpoort's tamper-evident audit log: entries, Merkle tree, checkpoints, store, verify."""
