"""Request and response models of the HTTP API (validation only; no serving logic)."""
