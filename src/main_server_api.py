"""The Life application's entry point: ``python -m src.main_server_api``.

The parts live in their own modules; this one keeps the names it has always
exported:

- `main`, `build_parser`: the command that wires the application (`src.cli`);
- `start_api_server`, `LifeServer`: the HTTP server's lifecycle (`src.api.server`);
- `LifeHandler`: the HTTP handler (`src.api.handler`), over the request logic
  `LifeApi` (`src.api.routes`);
- `LIMIT_KEYS`, `MAX_LIMIT`: the ``/status`` query's limits (`src.api.query`).

Endpoint reference: docs/components/api-server.md.
"""

from __future__ import annotations

import sys

from src.api.handler import LifeHandler
from src.api.query import LIMIT_KEYS, MAX_LIMIT
from src.api.routes import LifeApi
from src.api.server import LifeServer, start_api_server
from src.cli import build_parser, main

__all__ = ["LifeHandler", "LifeServer", "LifeApi", "start_api_server", "main", "build_parser",
           "LIMIT_KEYS", "MAX_LIMIT"]

if __name__ == "__main__":
    sys.exit(main())
