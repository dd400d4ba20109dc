"""Named shared-memory segments: files, headers, the writer role and its lock.

The native `SharedVitals` / `SharedBytes` (``_shared.pyx``) map what this module
opens.  A segment is a file - in ``/dev/shm`` for a bare name, or any path -
that starts with a 64-byte header (magic, layout version, kind, sizes), then
the schema as JSON, then the latch record (``csnap_latch`` of
``csnap_seqlock.h``).  See docs/shared-memory.md for the diagram.

The writer role is an exclusive ``flock`` on the file, held for the writer
handle's life; the kernel drops it when the process dies, so a successor can
take over.  A new segment is made whole under a temporary name and linked into
place, so nobody ever opens a half-made one.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
import struct
import time
import uuid

from ._schema import Field, check_schema

__all__ = ["SegmentError", "SegmentBusyError", "NotWriterError", "segment_path"]

MAGIC = b"CSNAPSHM"
LAYOUT = 1
KIND_VITALS = 1
KIND_BYTES = 2
KIND_NAMES = {KIND_VITALS: "SharedVitals", KIND_BYTES: "SharedBytes"}
HEADER = struct.Struct("<8sIIQQQIIQ8x")   # 64 bytes
HEADER_SIZE = HEADER.size
assert HEADER_SIZE == 64
LINE = 64
SHM_DIR = "/dev/shm"
# How long create() keeps trying for the writer role of an existing segment
# before it calls the writer alive: a reader's liveness probe takes the lock
# shared for a few microseconds.
TAKEOVER_TRIES = 50
TAKEOVER_PAUSE = 0.001


class SegmentError(OSError):
    """A shared-memory segment cannot be used: the message names the file and why."""


class SegmentBusyError(SegmentError):
    """Another live process holds the writer role of the segment."""


class NotWriterError(PermissionError):
    """A write through a handle that does not hold the writer role (a reader's handle)."""


def segment_path(name: object) -> str:
    """The file of segment `name`: ``/dev/shm/<name>`` for a bare name, else the path itself."""
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if not isinstance(name, str) or not name or "\0" in name:
        raise ValueError(f"a segment name is a non-empty str (a bare name or a path), got {name!r}")
    if "/" in name:
        return name
    if name in (".", ".."):
        raise ValueError(f"{name!r} is not a segment name")
    base = SHM_DIR if os.path.isdir(SHM_DIR) else os.environ.get("TMPDIR", "/tmp")
    return os.path.join(base, name)


def round_line(n: int) -> int:
    return (n + LINE - 1) // LINE * LINE


# ---- schema <-> JSON ------------------------------------------------------

def schema_json(fields: tuple[Field, ...]) -> bytes:
    rows = [{"name": f.name, "kind": f.kind.__name__, "default": f.default,
             "min": f.min, "max": f.max} for f in fields]
    return json.dumps(rows, separators=(",", ":")).encode()


def schema_from_json(path: str, blob: bytes) -> tuple[Field, ...]:
    try:
        rows = json.loads(blob)
        fields = [Field(r["name"], kind={"float": float, "int": int}[r["kind"]],
                        default=r["default"], min=r["min"], max=r["max"]) for r in rows]
        return check_schema(fields)
    except (ValueError, TypeError, KeyError) as e:
        raise SegmentError(f"{path}: the schema stored in the segment is corrupt ({e})") from None


# ---- header ---------------------------------------------------------------

class Header:
    __slots__ = ("kind", "size", "latch_offset", "schema_offset", "schema_size", "nslots",
                 "capacity")

    def __init__(self, kind: int, size: int, latch_offset: int, schema_offset: int,
                 schema_size: int, nslots: int, capacity: int) -> None:
        self.kind, self.size, self.latch_offset = kind, size, latch_offset
        self.schema_offset, self.schema_size = schema_offset, schema_size
        self.nslots, self.capacity = nslots, capacity

    def pack(self) -> bytes:
        return HEADER.pack(MAGIC, LAYOUT, self.kind, self.size, self.latch_offset,
                           self.schema_offset, self.schema_size, self.nslots, self.capacity)


def layout(kind: int, schema: bytes, nslots: int, capacity: int, latch_size: int) -> Header:
    latch_offset = round_line(HEADER_SIZE + len(schema))
    return Header(kind, latch_offset + latch_size, latch_offset, HEADER_SIZE, len(schema),
                  nslots, capacity)


def read_header(path: str, fd: int, kind: int) -> tuple[Header, bytes]:
    """Validate the header of an open segment; (header, schema bytes) or SegmentError."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise SegmentError(f"{path}: not a shared-memory segment (not a regular file)")
    raw = os.pread(fd, HEADER_SIZE, 0)
    if len(raw) < HEADER_SIZE:
        if raw and not raw.startswith(MAGIC[:len(raw)]):
            raise SegmentError(f"{path}: not a csnapshot segment (no csnapshot magic number)")
        raise SegmentError(f"{path}: truncated: {st.st_size} bytes, shorter than the "
                           f"{HEADER_SIZE}-byte segment header")
    magic, lay, k, size, latch_offset, schema_offset, schema_size, nslots, capacity = \
        HEADER.unpack(raw)
    if magic != MAGIC:
        raise SegmentError(f"{path}: not a csnapshot segment (magic {magic!r}, "
                           f"expected {MAGIC!r})")
    if lay != LAYOUT:
        raise SegmentError(f"{path}: segment layout version {lay}; this csnapshot reads "
                           f"layout version {LAYOUT} only")
    if k != kind:
        what = KIND_NAMES.get(k, f"an unknown kind ({k})")
        raise SegmentError(f"{path}: is a {what} segment, not a {KIND_NAMES[kind]}")
    if st.st_size < size:
        raise SegmentError(f"{path}: truncated: the header says {size} bytes, the file has "
                           f"{st.st_size}")
    if not (HEADER_SIZE <= schema_offset and schema_offset + schema_size <= latch_offset
            and latch_offset % LINE == 0 and latch_offset < size):
        raise SegmentError(f"{path}: corrupt header (offsets outside the segment)")
    schema = os.pread(fd, schema_size, schema_offset)
    if len(schema) != schema_size:
        raise SegmentError(f"{path}: truncated inside the schema")
    return Header(k, size, latch_offset, schema_offset, schema_size, nslots, capacity), schema


# ---- opening --------------------------------------------------------------

def check_mode(path: str, fd: int) -> None:
    st = os.fstat(fd)
    if st.st_mode & stat.S_IWOTH:
        raise PermissionError(
            f"{path}: refusing a segment every user may write (mode "
            f"{stat.S_IMODE(st.st_mode):04o}): anyone could corrupt it; "
            "create it with mode=0o600 (the default) or 0o640/0o660 to share with a group")


def open_reader(path: str, kind: int) -> tuple[int, bool, Header, bytes]:
    """(fd, writable, header, schema) of an existing segment, checked; raises clear errors.

    The fd is read-write when the file allows it: a reader then registers as a
    futex waiter in the segment (wait_newer); otherwise it is read-only and
    wait_newer polls.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0))
        writable = True
    except PermissionError:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0))
        except PermissionError:
            raise _no_access(path) from None
        writable = False
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, f"no shared-memory segment {path} "
                                f"({KIND_NAMES[kind]}.create makes one)", path) from None
    except OSError as e:
        raise _open_error(path, e) from None
    try:
        check_mode(path, fd)
        header, schema = read_header(path, fd, kind)
    except BaseException:
        os.close(fd)
        raise
    return fd, writable, header, schema


def _open_error(path: str, e: OSError) -> OSError:
    if e.errno == errno.ELOOP:
        return SegmentError(f"{path}: is a symbolic link; open the segment by its real path")
    if e.errno == errno.EISDIR:
        return SegmentError(f"{path}: not a shared-memory segment (not a regular file)")
    return e


def _no_access(path: str) -> PermissionError:
    try:
        st = os.stat(path)
        detail = f"mode {stat.S_IMODE(st.st_mode):04o}, owner uid {st.st_uid}, you are uid {os.geteuid()}"
    except OSError:
        detail = "cannot stat it"
    return PermissionError(errno.EACCES, f"no permission to read segment {path} ({detail})", path)


def try_writer_lock(fd: int, tries: int = TAKEOVER_TRIES) -> bool:
    for attempt in range(tries):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if attempt + 1 < tries:
                time.sleep(TAKEOVER_PAUSE)
    return False


def writer_probe(fd: int) -> bool:
    """True when some open file holds the writer role's lock (the writer is alive)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False


def new_file(path: str, size: int, mode: int) -> tuple[int, str]:
    """A zero-filled temporary file beside `path`, writer-locked; (fd, its name)."""
    if isinstance(mode, bool) or not isinstance(mode, int) or not 0 <= mode <= 0o777:
        raise ValueError(f"mode must be file permission bits such as 0o600, got {mode!r}")
    if mode & 0o002:
        raise ValueError(f"mode {mode:04o} lets every user write the segment; "
                         "at most 0o664 (0o600 is the default)")
    folder, base = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f".{base}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)            # the exact mode, whatever the umask
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, size)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    return fd, tmp


def link_into_place(tmp: str, path: str) -> bool:
    """Give the finished temporary file its name; False when `path` already exists."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)
    return True


def open_for_takeover(path: str, kind: int) -> tuple[int, Header, bytes]:
    """An existing segment opened read-write with the writer role taken; raises when busy."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0))
    except PermissionError:
        raise PermissionError(errno.EACCES, f"no permission to write segment {path}",
                              path) from None
    except OSError as e:
        raise _open_error(path, e) from None
    try:
        if not try_writer_lock(fd):
            pid = _stored_pid_hint(fd)
            raise SegmentBusyError(
                f"{path}: the segment has a live writer{pid}; "
                "one writer per segment (open it with .open() to read)")
        check_mode(path, fd)
        header, schema = read_header(path, fd, kind)
    except BaseException:
        os.close(fd)
        raise
    return fd, header, schema


def _stored_pid_hint(fd: int) -> str:
    # The writer pid lives in the latch (line 1, offset 72); best effort, for the message.
    try:
        raw = os.pread(fd, HEADER_SIZE, 0)
        latch_offset = HEADER.unpack(raw)[4]
        pid = struct.unpack("<q", os.pread(fd, 8, latch_offset + LINE + 8))[0]
        return f" (pid {pid})" if pid > 0 else ""
    except (OSError, struct.error):
        return ""


def write_header(fd: int, header: Header, schema: bytes) -> None:
    os.pwrite(fd, header.pack(), 0)
    os.pwrite(fd, schema, header.schema_offset)


def same_file(path: str, fd: int) -> bool:
    """False once `path` no longer names the file open on `fd` (unlinked or replaced)."""
    try:
        a, b = os.stat(path), os.fstat(fd)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def reopen_fd(fd: int, path: str) -> int:
    """A new open file of the same file as `fd` (its own flock state), read-only."""
    for candidate in (f"/proc/self/fd/{fd}", path):
        try:
            return os.open(candidate, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
    return -1

