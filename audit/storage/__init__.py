"""Where the audit log is kept."""
