from __future__ import annotations

import pytest

from aiobreakers.testing import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    """A fresh virtual clock, injected explicitly into what a test builds."""
    return FakeClock()
