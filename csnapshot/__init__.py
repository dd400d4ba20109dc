"""csnapshot: consistent, lock-free snapshots of state for one writer and many readers.

`Vitals` keeps named numeric fields in a C seqlock record: a writer never waits
for readers, and readers get a consistent copy of all fields without a lock and
without the GIL.  `Field` declares one field of its schema.  The copy-on-write
containers (`SnapshotLog`/`LogView`, `CowDict`/`FrozenDict`, `PublishCell`)
snapshot the complex parts of a state in O(1) per publish.

This module is the one public import point.  The native implementation is used
when the compiled extension imports; otherwise the pure-Python twin is used and
a `RuntimeWarning` says so (set ``CSNAPSHOT_REQUIRE_NATIVE=1`` to make that an
ImportError instead).
"""

from __future__ import annotations

import os as _os
import warnings as _warnings
from typing import TYPE_CHECKING, Any

from ._schema import Field, StalledWriterError
from ._segment import NotWriterError, SegmentBusyError, SegmentError, segment_path
from ._pyvitals import Vitals as PyVitals
from .cow import (CowDict, FrozenDict, LogView, PublishCell, SnapshotLog, freeze_value,
                  json_default)

_native_vitals: Any
IMPLEMENTATION: str


def _fallback_reason(exc: ImportError) -> str:
    """What actually happened, for the fallback's warning.

    A source checkout that was never built has no ``_vitals`` binary beside
    this file; Python then reports the failed import as "partially initialized
    module ... (most likely due to a circular import)", which misleads.
    """
    here = _os.path.dirname(_os.path.abspath(__file__))
    if not any(name.startswith("_vitals.") and name.endswith((".so", ".pyd"))
               for name in _os.listdir(here)):
        return (f"csnapshot: the compiled extension is not built in {here} (a source checkout "
                "on sys.path?); using the pure-Python implementation. Build it in place with "
                "`pip install -e .`")
    return (f"csnapshot: the compiled extension in {here} could not be imported ({exc}); "
            "using the pure-Python implementation")

class _needs_native:
    """Stands in for the shared-memory types when the extension is not built."""

    def __init__(self, what: str) -> None:
        self._what = what

    def _fail(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"csnapshot.{self._what} needs the compiled extension "
                           "(`pip install -e .` builds it)")

    create = open = _fail


if TYPE_CHECKING:
    from ._vitals import Vitals as Vitals
    from ._shared import SharedBytes as SharedBytes, SharedVitals as SharedVitals
else:
    try:
        from . import _vitals as _native_vitals
    except ImportError as _exc:  # pragma: no cover - exercised by a subprocess test
        if _os.environ.get("CSNAPSHOT_REQUIRE_NATIVE"):
            raise
        _native_vitals = None
        _warnings.warn(_fallback_reason(_exc), RuntimeWarning, stacklevel=2)
        Vitals = PyVitals
        IMPLEMENTATION = "python"
        SharedVitals = SharedBytes = _needs_native("SharedVitals/SharedBytes")
    else:
        Vitals = _native_vitals.Vitals
        IMPLEMENTATION = "native"
        from ._shared import SharedBytes, SharedVitals

__version__ = "0.1.0"
__all__ = ["Field", "Vitals", "PyVitals", "StalledWriterError", "get_include",
           "SharedVitals", "SharedBytes", "SegmentError", "SegmentBusyError", "NotWriterError",
           "segment_path",
           "SnapshotLog", "LogView", "CowDict", "FrozenDict", "PublishCell", "freeze_value",
           "json_default", "IMPLEMENTATION", "__version__"]


def get_include() -> str:
    """The folder holding ``csnap_seqlock.h`` and csnapshot's ``.pxd`` files.

    Cython finds the ``.pxd`` files of an installed package by itself; pass this
    to ``include_dirs`` so the C compiler finds the header.
    """
    return _os.path.dirname(_os.path.abspath(__file__))
