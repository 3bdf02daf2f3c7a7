"""`bcd models`: the checkpoints (published download, seeded demo weights, verification)."""
