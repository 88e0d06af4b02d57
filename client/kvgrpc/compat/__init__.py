"""Drop-in adapters for other projects' key/value ports."""
