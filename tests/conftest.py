from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from aiobreakers.testing import FakeClock

pytest_plugins = ["pytester"]


@pytest.fixture
def clock(fake_clock: FakeClock) -> FakeClock:
    """The plugin's virtual clock: the default, and injected where tests say."""
    return fake_clock
