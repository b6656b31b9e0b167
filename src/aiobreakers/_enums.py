"""The base of the library's string-valued enums."""

from __future__ import annotations

from enum import Enum


class StrValueEnum(str, Enum):
    """
    An enum whose members are strings that print as their value.

    ``str()`` and f-strings give ``"open"``, not ``"CircuitState.OPEN"``, on
    every Python version (3.11 changed what mixed-in enums format as).
    """

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, format_spec: str) -> str:
        return str(self.value).__format__(format_spec)
