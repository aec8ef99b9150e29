"""The exchange stand-in as a service of its own: one ledger for every placer of a cluster."""
