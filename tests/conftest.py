"""Shared fixtures: every contract test runs on both implementations."""

import os

import pytest

# The suite tests the compiled extension: refuse the silent pure-Python fallback.
os.environ.setdefault("CSNAPSHOT_REQUIRE_NATIVE", "1")

import csnapshot  # noqa: E402
from csnapshot import _native_vitals  # noqa: E402

IMPLEMENTATIONS = {"native": _native_vitals.Vitals if _native_vitals else None,
                   "python": csnapshot.PyVitals}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def Vitals(request):
    """The Vitals type under test: the native one and its pure-Python twin."""
    cls = IMPLEMENTATIONS[request.param]
    if cls is None:
        pytest.fail("the compiled extension is not importable")
    return cls


# The application (`src`) runs from the checkout and is not installed.  Append
# the repository root - never prepend it: the checkout's csnapshot/ must not
# shadow the installed package imported above.
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.append(str(Path(__file__).resolve().parent.parent))
