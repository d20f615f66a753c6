"""The audit trail: run records as commits on an append-only orphan branch."""
