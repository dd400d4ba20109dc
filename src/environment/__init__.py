"""The environment: events, the bounded queue that carries them to the loop, a generator.

- `Event` (`event.py`): type, intensity in [-1, 1], timestamp, metadata; validated.
- `EventQueue` (`event_queue.py`): bounded, thread-safe; a full queue drops and counts.
- `EventGenerator` (`generator.py`): the default environment, seedable.

Only the runtime loop applies events to the state (docs/components/runtime-loop.md).
"""

from .event import KNOWN_EVENT_TYPES, Event
from .event_queue import EventQueue
from .generator import EventGenerator

__all__ = ["Event", "EventQueue", "EventGenerator", "KNOWN_EVENT_TYPES"]
