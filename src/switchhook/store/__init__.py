"""Persistence: store protocols (base), one SQL repository shared by the SQLite and PostgreSQL backends."""
