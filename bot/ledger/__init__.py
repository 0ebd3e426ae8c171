"""The domain layer: what the ledger says. Handlers and jobs ask it; only it writes the ledger."""
