"""UAI (unité administrative immatriculée, a school's national number): seven digits and a key
letter.

The key is ``"ABCDEFGHJKLMNPRSTUVWXYZ"[int(digits) % 23]`` (23 letters: no I, O, Q).
"""

from __future__ import annotations

import re

__all__ = ["UAI_PATTERN", "has_uai_shape", "is_valid_uai", "uai_check_letter"]

#: The shape of a UAI (its key letter unchecked): what the API and the registre accept.
UAI_PATTERN = r"^[0-9]{7}[A-Z]$"
_KEY_LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"
_UAI = re.compile(UAI_PATTERN)


def uai_check_letter(digits: str) -> str:
    """The key letter of a UAI whose first seven characters are ``digits``."""
    if len(digits) != 7 or not digits.isascii() or not digits.isdigit():
        raise ValueError(f"a UAI starts with 7 digits, got {digits!r}")
    return _KEY_LETTERS[int(digits) % 23]


def has_uai_shape(uai: str) -> bool:
    """Whether ``uai`` is 7 digits and a capital letter (``UAI_PATTERN``), its key unchecked."""
    return bool(_UAI.fullmatch(uai))


def is_valid_uai(uai: str) -> bool:
    """Whether ``uai`` is 7 digits followed by their key letter."""
    return bool(_UAI.fullmatch(uai)) and uai[7] == _KEY_LETTERS[int(uai[:7]) % 23]
