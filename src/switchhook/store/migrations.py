"""Numbered plain-SQL migrations per backend, applied in order and recorded in `schema_migrations`."""

from __future__ import annotations

from importlib import resources


def migration_files(backend: str) -> list[tuple[str, str]]:
    """(version, sql) for every `NNNN_name.sql` of `backend`, in order."""
    folder = resources.files("switchhook.store").joinpath("migrations", backend)
    files = sorted((p for p in folder.iterdir() if p.name.endswith(".sql")), key=lambda p: p.name)
    return [(p.name.removesuffix(".sql"), p.read_text()) for p in files]
