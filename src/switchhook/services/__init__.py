"""Use cases: each service owns its transactions and sees only the store protocols."""
