"""Adding a sink to the process-wide one, and taking it away again."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiobreakers import Event, EventSink, get_defaults, set_defaults
from aiobreakers._ports import check_port

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["add_sink"]


class _Tee:
    """Hands each event to several sinks, in order."""

    def __init__(self, *sinks: EventSink) -> None:
        self.sinks = sinks

    def emit(self, event: Event) -> None:
        for sink in self.sinks:
            sink.emit(event)

    def __repr__(self) -> str:
        return f"_Tee{self.sinks!r}"


def add_sink(sink: EventSink) -> Callable[[], None]:
    """
    Make *sink* receive every event, beside any process-wide sink already set.

    Returns:
        A function that restores the process-wide sink found here. Undo
        additions in the reverse order of making them (as nested ``with``
        blocks and fixtures do).

    Raises:
        TypeError: *sink* does not implement :class:`~aiobreakers.EventSink`
            (a class rather than an instance, say).
    """
    # Checked here: wrapped in a tee, set_defaults would never see it.
    check_port(sink, EventSink, "sink")
    previous = get_defaults().sink
    set_defaults(sink=sink if previous is None else _Tee(previous, sink))

    def remove() -> None:
        set_defaults(sink=previous)

    return remove
