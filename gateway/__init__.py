"""Doelpoort: a purpose-binding gateway for counter-terrorism information sharing."""

__version__ = "0.1.0"
