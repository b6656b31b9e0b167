"""Stress runs: storms against aiobreakers with invariants checked at the end."""
