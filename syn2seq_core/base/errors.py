"""Errors raised on bad user input.

Every public function validates at its boundary and raises :class:`Syn2SeqInputError` with a message
that names the input, what was expected and what was found ("expected X, got Y"). It subclasses
``ValueError`` so callers that already catch ``ValueError`` keep working.
"""

from __future__ import annotations


class Syn2SeqInputError(ValueError):
    """Bad input: names the input, what was expected and what was found."""

    def __init__(self, name: str, expected: str, found: object, hint: str | None = None):
        self.name = name
        self.expected = expected
        self.found = found
        self.hint = hint
        message = f"{name}: expected {expected}, got {found}"
        if hint:
            message += f". {hint}"
        super().__init__(message)


def require(condition: bool, name: str, expected: str, found: object, hint: str | None = None) -> None:
    """Raise :class:`Syn2SeqInputError` unless ``condition`` holds."""
    if not condition:
        raise Syn2SeqInputError(name, expected, found, hint)


def check_finite(tensor, name: str) -> None:
    """Refuse NaN or inf in a tensor, naming how many entries are bad."""
    import torch

    bad = ~torch.isfinite(tensor)
    if bool(bad.any()):
        raise Syn2SeqInputError(name, "finite values", f"{int(bad.sum())} NaN/inf entries")


def check_choice(value: str, choices, name: str) -> str:
    """Return ``value`` if it is one of ``choices``; otherwise name the known ones."""
    known = sorted(choices)
    if value not in choices:
        raise Syn2SeqInputError(name, f"one of {known}", repr(value))
    return value
