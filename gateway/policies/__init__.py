"""Per-message policies: rate limits, series budgets, liveness, privacy, tenants."""
