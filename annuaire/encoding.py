"""Unpadded base64url (RFC 4648 §5, the form JOSE uses: RFC 7515 §2), in one place.

Keys, tokens, client secrets and API cursors are all written this way.
:func:`b64url_decode` raises ``ValueError`` (``binascii.Error`` is one) for what is not
base64url; it accepts non-canonical spellings (spare bits), which callers that must refuse
them check by encoding again.
"""

from __future__ import annotations

import base64

__all__ = ["b64url_decode", "b64url_encode"]


def b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
