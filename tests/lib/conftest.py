"""The library's suite: runs without the application (`pytest tests/lib`).

Every contract test runs on both implementations through the `Vitals` fixture.
"""

import os

import pytest

# The suite tests the compiled extension: refuse the silent pure-Python fallback
# (also set by tests/conftest.py; repeated so this folder stands on its own).
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
