"""The Life application's suite (`pytest tests/app`)."""

import os
import sys
from pathlib import Path

os.environ.setdefault("CSNAPSHOT_REQUIRE_NATIVE", "1")

import csnapshot  # noqa: E402,F401  (the installed package, imported before the checkout is on sys.path)

# The application (`src`) runs from the checkout and is not installed.  Append
# the repository root - never prepend it: the checkout's csnapshot/ must not
# shadow the installed package imported above.
sys.path.append(str(Path(__file__).resolve().parents[2]))
