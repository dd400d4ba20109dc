"""Benchmarks are opt-in: `pytest benchmarks` (the default testpaths is tests/).

The benchmark modules import each other as top-level modules (they are also
scripts run by path), so this folder - not the repository root, which would
shadow the installed csnapshot - goes on sys.path.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
