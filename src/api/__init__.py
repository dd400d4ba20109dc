"""The Life HTTP API (the readers): request logic apart from the server that carries it.

- `routes.py` `LifeApi`: every endpoint as a function of the request's parts.
- `query.py`: the ``/status`` query parser (`LIMIT_KEYS`, `MAX_LIMIT`).
- `cache.py` `StatusCache`: a body serialised once per snapshot version and query.
- `health.py`: the ``/health`` body and the tick-rate estimate.
- `errors.py`: `BadRequest`, the JSON encoding, the `Response` triple.
- `handler.py` `LifeHandler`: ``BaseHTTPRequestHandler`` over `LifeApi`.
- `server.py` `LifeServer`, `start_api_server`: the threaded server's lifecycle.

Reference: docs/components/api-server.md.
"""

from .handler import LifeHandler
from .routes import LifeApi
from .server import LifeServer, start_api_server

__all__ = ["LifeApi", "LifeHandler", "LifeServer", "start_api_server"]
