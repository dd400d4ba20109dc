"""Settings shared by both suites: tests/lib (the library) and tests/app (the Life application)."""

import os

# The suites test the compiled extension: refuse the silent pure-Python fallback.
os.environ.setdefault("CSNAPSHOT_REQUIRE_NATIVE", "1")
