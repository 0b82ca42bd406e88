"""Domain names as tenants are named: what a name may hold, so logs, tokens and the API show one unambiguous string."""

from __future__ import annotations

import unicodedata
from typing import Any

from switchhook.core.errors import ValidationFailed

MAX_DOMAIN_NAME = 253  # a DNS name's length
#: Unicode categories refused anywhere in a name: controls (NUL, line breaks, C1) and format characters,
#: which hold the bidi overrides and isolates (U+202A-U+202E, U+2066-U+2069), the LRM/RLM marks (U+200E/F)
#: and zero-width characters: `evil\u202eelpmaxe.com` reads as another tenant's name in a log or a list.
_REFUSED_CATEGORIES = frozenset(("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"))


def validate_domain_name(name: Any) -> str:
    """The name when a domain may be called that, else ValidationFailed saying why."""
    if not isinstance(name, str) or not name or len(name) > MAX_DOMAIN_NAME or any(c in name for c in "/@"):
        raise ValidationFailed("Bad request: domain name must be a non-empty host-like name.")
    for char in name:
        if char.isspace() or (not char.isascii() and unicodedata.category(char) in _REFUSED_CATEGORIES):
            raise ValidationFailed(
                f"Bad request: domain name must not contain spaces, control or bidi characters (U+{ord(char):04X})."
            )
        if char < " " or char == "\x7f":
            raise ValidationFailed(f"Bad request: domain name must not contain control characters (U+{ord(char):04X}).")
    return name
