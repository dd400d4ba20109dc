from typing import Any

def run(vitals: Any, readers: int, seconds: float, writer: str, writers: int,
        write_rate: float, read_timeout: float, sync: str = ...,
        min_reads: int = ..., max_seconds: float = ...) -> tuple[dict[str, Any], list[int]]: ...
