"""The runtime: the loop that is the state's only writer, and what a tick computes.

- `run_loop` (`loop.py`): the ticks, publishing, hand-off to persistence.
- `MeaningEngine` (`meaning.py`): significance, response and impact of an event.
- `learning.py`: the periodic learning and adaptation steps.

See docs/components/runtime-loop.md.
"""

from .loop import LoopSummary, run_loop
from .meaning import Meaning, MeaningEngine

__all__ = ["run_loop", "LoopSummary", "MeaningEngine", "Meaning"]
