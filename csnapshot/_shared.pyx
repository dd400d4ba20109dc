# cython: language_level=3, freethreading_compatible=True, boundscheck=False, wraparound=False
"""`SharedVitals` and `SharedBytes`: latch records in named shared-memory segments.

A segment (see _segment.py) holds a header, the schema and a `csnap_latch`
(csnap_seqlock.h): two copies of the data, so readers in any process never
wait for the writer - not even for one that died inside a write.  One process
holds the writer role (an exclusive flock); its handle writes, every other
handle reads.  docs/shared-memory.md has the layout and the guarantees.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.dict cimport PyDict_SetItem
from cpython.exc cimport PyErr_CheckSignals
from cpython.float cimport PyFloat_FromDouble
from cpython.long cimport PyLong_FromLongLong
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from libc.math cimport isfinite
from libc.stdint cimport INT64_MAX, int64_t, uint32_t, uint64_t
from posix.mman cimport MAP_FAILED, MAP_SHARED, PROT_READ, PROT_WRITE, mmap, munmap

from csnapshot._seqlock cimport *
from csnapshot._vitals cimport _Memo, vitals_add_delta, vitals_convert, vitals_delta_overflow

import os
import threading
import weakref
from collections.abc import Mapping

from csnapshot import _segment
from csnapshot._schema import (
    StalledWriterError, check_schema, check_timeout, timeout_forever, unknown_field,
)
from csnapshot._segment import NotWriterError, SegmentError

from csnapshot._cpython cimport PyDict_GetItemWithError
from csnapshot._pycell cimport (CSNAP_FREE_THREADED, csnap_cell_load, csnap_cell_store,
                                csnap_next_uid, csnap_role_load, csnap_role_store,
                                csnap_thread_dict)

# Longest single wait without a look at Python signals (Ctrl-C) in wait_newer.
DEF WAIT_CHUNK_NS = 100000000

cdef object _INTERNAL = object()

# Per-thread memo keys (free-threaded builds), as in _vitals: private objects.
@cython.auto_pickle(False)
cdef class _MemoKey:
    pass

cdef tuple _MEMO_KEYS = tuple([_MemoKey() for _ in range(8)])

# Every live handle, so a forked child can drop the writer role it inherited.
_HANDLES = weakref.WeakSet()
_HANDLES_LOCK = threading.Lock()


def _before_fork():
    _HANDLES_LOCK.acquire()


def _after_fork_parent():
    _HANDLES_LOCK.release()


def _after_fork_child():
    # One thread, the forking one: no handle is in use concurrently.
    for h in list(_HANDLES):
        (<_SharedBase>h)._forked()
    _HANDLES_LOCK.release()


os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_parent,
                    after_in_child=_after_fork_child)


cdef int64_t _timeout_ns(double t):
    return -1 if timeout_forever(t) else <int64_t>(t * 1e9)


@cython.auto_pickle(False)
cdef class _SharedBase:
    """What both segment types share: the mapping, the writer role, waiting."""

    def __cinit__(self, token=None):
        if token is not _INTERNAL:
            raise TypeError(f"{type(self).__name__} handles are made by "
                            f"{type(self).__name__}.create() or .open()")
        self._map = NULL
        self._fd = -1
        self._writer = 0

    def __dealloc__(self):
        if self._map != NULL:
            munmap(self._map, self._size)
            self._map = NULL
        if self._fd >= 0:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = -1

    cdef int _attach(self, int fd, bint writable, header, double timeout) except -1:
        cdef int prot = PROT_READ | (PROT_WRITE if writable else 0)
        cdef void *p = mmap(NULL, header.size, prot, MAP_SHARED, fd, 0)
        if p == MAP_FAILED:
            os.close(fd)
            raise OSError(f"{self.path}: mmap of {header.size} bytes failed")
        self._map = <char *>p
        self._size = header.size
        self._fd = fd
        self._writable_map = writable
        self._latch = <csnap_latch *>(self._map + <size_t>header.latch_offset)
        self._timeout = timeout
        self._timeout_ns = _timeout_ns(timeout)
        self._owner_pid = os.getpid()
        self._role_lock = threading.Lock()
        with _HANDLES_LOCK:
            _HANDLES.add(self)
        return 0

    cdef int _check_latch(self, header, uint32_t ninfo) except -1:
        # The mapped latch must agree with the header and fit in the file.
        cdef csnap_latch *l = self._latch
        if (l.nslots != header.nslots or l.stride != csnap_latch_stride(l.nslots)
                or l.ninfo != ninfo
                or header.latch_offset + csnap_latch_size(l.nslots, l.ninfo) > self._size):
            raise SegmentError(f"{self.path}: corrupt segment (the record does not match "
                               "its header)")
        return 0

    cdef int _forked(self) except -1:
        # In a forked child: the writer role stays with the parent.  Our fd's
        # open file is shared with the parent, and its flock with it: close it
        # (never unlock it, which would drop the parent's role) and use a
        # fresh open file of our own for liveness probes.
        cdef int old = self._fd
        if csnap_role_load(&self._writer):
            csnap_role_store(&self._writer, 0)
            self._fd = _segment.reopen_fd(old, self.path)
            os.close(old)
            # _owner_pid stays the parent's: _need_writer() names the fork.
        else:
            self._owner_pid = os.getpid()
        self._role_lock = threading.Lock()
        return 0

    cdef int _need_writer(self) except -1:
        if not csnap_role_load(&self._writer):
            if self._owner_pid != os.getpid() or self._fd < 0:
                why = "this process was forked from the writer; the role stayed with the parent"
            else:
                why = (f"it was opened with {type(self).__name__}.open() (or closed); only the "
                       f"handle from {type(self).__name__}.create() writes")
            raise NotWriterError(f"{self.path}: this {type(self).__name__} handle is not the "
                                 f"writer: {why}")
        return 0

    cdef int _lock(self) except -1:
        # The writer process's threads take turns; then the role is checked
        # again under the lock (close() may have dropped it meanwhile).
        cdef int rc
        self._need_writer()
        rc = csnap_latch_lock(self._latch, 0)
        if rc != CSNAP_OK:
            with nogil:
                rc = csnap_latch_lock(self._latch, self._timeout_ns)
            if rc != CSNAP_OK:
                raise StalledWriterError(
                    f"{self.path}: another thread kept the write lock for over {self._timeout} s")
        if not csnap_role_load(&self._writer):
            csnap_latch_unlock(self._latch)
            self._need_writer()
        return 0

    # ---- the writer role -------------------------------------------------

    @property
    def is_writer(self):
        """True while this handle holds the writer role."""
        return bool(csnap_role_load(&self._writer))

    @property
    def writer_alive(self):
        """True while some process holds the segment's writer role.

        The role is an exclusive flock, released by the kernel when the writer
        exits or dies, so this turns False as soon as the writer is gone.
        """
        if csnap_role_load(&self._writer):
            return True
        if self._fd < 0:
            return False
        return _segment.writer_probe(self._fd)

    @property
    def writer_pid(self):
        """The pid of the last process that took the writer role (0: none)."""
        return csnap_latch_writer_pid(self._latch)

    @property
    def replaced(self):
        """True once the segment's name no longer refers to this mapping (unlinked or re-created)."""
        return not _segment.same_file(self.path, self._fd) if self._fd >= 0 else True

    def close(self):
        """Give up the writer role (the handle keeps reading); a no-op on a reader."""
        with self._role_lock:
            if not csnap_role_load(&self._writer):
                return
            with nogil:
                csnap_latch_lock(self._latch, -1)     # no write in flight
            csnap_role_store(&self._writer, 0)
            csnap_latch_set_writer_pid(self._latch, 0)
            csnap_latch_unlock(self._latch)
            import fcntl
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def unlink(self):
        """Remove the segment's name (mappings stay valid until their handles go)."""
        if _segment.same_file(self.path, self._fd):
            os.unlink(self.path)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # ---- waiting ---------------------------------------------------------

    cdef object _current_version(self):
        return csnap_latch_version(self._latch)

    def wait_newer(self, version, timeout=None):
        """Block until the version is newer than `version` or `timeout` seconds pass.

        True when a newer version is there, False on timeout.  Waits on a
        futex in the segment (Linux; any process's writer wakes it), without
        the GIL; ``timeout=None`` waits forever.
        """
        if isinstance(version, bool) or not isinstance(version, int):
            raise TypeError(f"wait_newer() takes an int version, got {version!r}")
        cdef int64_t left_ns = -1
        cdef int64_t deadline = INT64_MAX
        cdef int64_t chunk, now
        cdef uint64_t seen
        cdef int changed
        if timeout is not None:
            t = float(timeout)
            if not t >= 0:
                raise ValueError(f"timeout must be >= 0 seconds or None, got {timeout!r}")
            left_ns = INT64_MAX if t * 1e9 >= 9.2e18 else <int64_t>(t * 1e9)
            now = csnap_monotonic_ns()
            deadline = INT64_MAX if left_ns > INT64_MAX - now else now + left_ns
        while True:
            seen = csnap_latch_version(self._latch)
            if self._current_version() > version:
                return True
            now = csnap_monotonic_ns()
            if now >= deadline:
                return False
            chunk = deadline - now
            if chunk > WAIT_CHUNK_NS:
                chunk = WAIT_CHUNK_NS
            if self._writable_map:
                with nogil:
                    changed = csnap_latch_wait(self._latch, seen, chunk)
            else:
                # A read-only mapping cannot register as a futex waiter: poll.
                with nogil:
                    while csnap_latch_version(self._latch) == seen and chunk > 0:
                        csnap_sleep_ns(200000)
                        chunk -= 200000
            PyErr_CheckSignals()


cdef _Memo _new_memo(uint64_t seq, uint64_t uid, tuple values):
    cdef _Memo m = _Memo.__new__(_Memo)
    m.seq = seq
    m.uid = uid
    m.values = values
    return m


@cython.auto_pickle(False)
cdef class SharedVitals(_SharedBase):
    """A `Vitals` record in a named shared-memory segment, readable from any process.

    ``SharedVitals.create(name, fields)`` makes the segment (``/dev/shm/<name>``
    for a bare name, else the path; mode 0600) and returns the one writer's
    handle; ``SharedVitals.open(name)`` attaches a reader's handle in any
    process.  Reads never wait for the writer, not even for a dead one.
    """

    @staticmethod
    def create(name, fields, *, mode=0o600, timeout=1.0):
        """Make (or take over) segment `name` and return the writer's handle.

        An existing segment is taken over when its writer is gone (a successor
        after a crash) and its schema equals `fields`; the record is repaired
        from the copy readers were reading and keeps its version history.  A
        live writer makes this raise `SegmentBusyError`.
        """
        path = _segment.segment_path(name)
        schema = check_schema(fields)
        cdef double t = check_timeout(timeout)
        blob = _segment.schema_json(schema)
        cdef uint32_t n = <uint32_t>len(schema)
        header = _segment.layout(_segment.KIND_VITALS, blob, n, 0, csnap_latch_size(n, n))
        cdef SharedVitals self = SharedVitals.__new__(SharedVitals, _INTERNAL)
        self.path = path
        fd, tmp = _segment.new_file(path, header.size, mode)
        try:
            _segment.write_header(fd, header, blob)
            self._attach(fd, True, header, t)
        except BaseException:
            os.unlink(tmp)
            raise
        csnap_latch_init(self._latch, n, n)
        self._setup(schema)
        self._init_slots()
        csnap_latch_set_writer_pid(self._latch, os.getpid())
        csnap_role_store(&self._writer, 1)
        if _segment.link_into_place(tmp, path):
            return self
        # The name exists: take it over instead (our new file is dropped).
        self = None
        return SharedVitals._take_over(path, schema, t)

    @staticmethod
    def _take_over(path, schema, double t):
        fd, header, blob = _segment.open_for_takeover(path, _segment.KIND_VITALS)
        cdef SharedVitals self = SharedVitals.__new__(SharedVitals, _INTERNAL)
        self.path = path
        self._attach(fd, True, header, t)
        stored = _segment.schema_from_json(path, blob)
        if stored != schema:
            raise SegmentError(
                f"{path}: the segment holds another schema ({', '.join(map(repr, stored))}); "
                "create it with the same fields, or unlink it first")
        self._check_latch(header, header.nslots)
        self._setup(stored)
        csnap_latch_recover(self._latch)
        csnap_latch_set_writer_pid(self._latch, os.getpid())
        csnap_role_store(&self._writer, 1)
        return self

    @staticmethod
    def open(name, *, timeout=1.0):
        """Attach a reader's handle to segment `name` (reads only; any process)."""
        path = _segment.segment_path(name)
        cdef double t = check_timeout(timeout)
        fd, writable, header, blob = _segment.open_reader(path, _segment.KIND_VITALS)
        schema = _segment.schema_from_json(path, blob)
        if header.nslots != len(schema):
            os.close(fd)
            raise SegmentError(f"{path}: corrupt header (slot count {header.nslots} for "
                               f"{len(schema)} fields)")
        cdef SharedVitals self = SharedVitals.__new__(SharedVitals, _INTERNAL)
        self.path = path
        self._attach(fd, writable, header, t)
        self._check_latch(header, header.nslots)
        self._setup(schema)
        return self

    cdef int _setup(self, tuple schema) except -1:
        self._fields = schema
        self._names = tuple([f.name for f in schema])
        self._index = {f.name: i for i, f in enumerate(schema)}
        self._n = <uint32_t>len(schema)
        self._info = csnap_latch_info(self._latch)
        self._uid = csnap_next_uid()
        self._memo_key = _MEMO_KEYS[self._uid & 7]
        self._memo_box = [_new_memo(0xFFFFFFFFFFFFFFFF, self._uid, None)]
        return 0

    cdef int _init_slots(self) except -1:
        # A new segment, not yet linked: nobody else can see it.
        cdef uint32_t i, c
        cdef uint64_t bits
        for i in range(self._n):
            f = self._fields[i]
            if f.kind is int:
                self._info[i].kind = CSNAP_I64
                if f.min is not None:
                    self._info[i].imin = f.min
                if f.max is not None:
                    self._info[i].imax = f.max
                bits = csnap_i64_bits(f.default)
            else:
                self._info[i].kind = CSNAP_F64
                if f.min is not None:
                    self._info[i].fmin = f.min
                if f.max is not None:
                    self._info[i].fmax = f.max
                bits = csnap_f64_bits(f.default)
            for c in range(2):
                csnap_latch_store_bits(self._latch, c, i, bits)
        return 0

    # ---- reads -----------------------------------------------------------

    @property
    def fields(self):
        """The schema stored in the segment: a tuple of `Field`."""
        return self._fields

    @property
    def version(self):
        """Completed writes since the segment was made."""
        return csnap_latch_version(self._latch)

    cdef _Memo _memo(self):
        cdef PyObject *d
        cdef PyObject *item
        if not CSNAP_FREE_THREADED:
            return <_Memo>csnap_cell_load(self._memo_box)
        d = csnap_thread_dict()
        if d == NULL:
            return None
        item = PyDict_GetItemWithError(<object>d, self._memo_key)
        if item == NULL or (<_Memo>item).uid != self._uid:
            return None
        return <_Memo>item

    cdef int _keep_memo(self, _Memo m) except -1:
        cdef PyObject *d
        if not CSNAP_FREE_THREADED:
            csnap_cell_store(self._memo_box, m)
            return 0
        d = csnap_thread_dict()
        if d != NULL:
            PyDict_SetItem(<object>d, self._memo_key, m)
        return 0

    cdef _Memo _fresh(self):
        cdef uint64_t stack_buf[32]
        cdef uint64_t *buf = stack_buf
        cdef uint64_t seq = 0
        cdef int rc
        cdef int64_t deadline
        cdef bytearray scratch = None
        if self._n > 32:
            scratch = bytearray(self._n * 8)
            buf = <uint64_t *><char *>scratch
        rc = csnap_latch_read(self._latch, self._n, buf, &seq, NULL)
        if rc == CSNAP_BUSY:
            # Every attempt was overtaken by a new write (a writer flat out on
            # this core).  Keep trying without the GIL, bounded.
            with nogil:
                deadline = csnap_monotonic_ns() + (self._timeout_ns if self._timeout_ns >= 0
                                                   else INT64_MAX // 2)
                while rc == CSNAP_BUSY and csnap_monotonic_ns() < deadline:
                    csnap_sleep_ns(10000)
                    rc = csnap_latch_read(self._latch, self._n, buf, &seq, NULL)
            if rc != CSNAP_OK:
                raise StalledWriterError(f"{self.path}: the writer overtook every read for "
                                         f"{self._timeout} s")
        cdef tuple out = PyTuple_New(self._n)
        cdef uint32_t i
        for i in range(self._n):
            if self._info[i].kind == CSNAP_I64:
                v = PyLong_FromLongLong(csnap_bits_i64(buf[i]))
            else:
                v = PyFloat_FromDouble(csnap_bits_f64(buf[i]))
            Py_INCREF(v)
            PyTuple_SET_ITEM(out, i, v)
        cdef _Memo m = _new_memo(seq, self._uid, out)
        self._keep_memo(m)
        return m

    def read_tuple(self):
        """All values, in schema order, as one consistent tuple (cached while unchanged)."""
        cdef uint64_t s = csnap_latch_read_begin(self._latch)
        cdef _Memo m = self._memo()
        # Same counter, or the first half of a write that began right after
        # the memo (readers are then sent to the copy the memo was read from).
        if m is not None and (m.seq == s or ((s & 1) and m.seq + 1 == s)):
            return m.values
        return self._fresh().values

    def read_versioned(self):
        """``(version, values)``: a consistent tuple and the version it shows."""
        cdef uint64_t s = csnap_latch_read_begin(self._latch)
        cdef _Memo m = self._memo()
        if m is None or not (m.seq == s or ((s & 1) and m.seq + 1 == s)):
            m = self._fresh()
        return (m.seq >> 1, m.values)

    def read(self):
        """All values as a new ``{name: value}`` dict, one consistent copy."""
        cdef tuple values = self.read_tuple()
        cdef dict out = {}
        cdef Py_ssize_t i
        for i in range(self._n):
            PyDict_SetItem(out, self._names[i], values[i])
        return out

    def get(self, name):
        """One field's current value (one consistent load)."""
        cdef uint32_t i = self._slot(name)
        cdef uint64_t s, bits
        while True:
            s = csnap_latch_read_begin(self._latch)
            bits = csnap_latch_load_bits(self._latch, s, i)
            if not csnap_latch_read_retry(self._latch, s):
                break
        if self._info[i].kind == CSNAP_I64:
            return PyLong_FromLongLong(csnap_bits_i64(bits))
        return PyFloat_FromDouble(csnap_bits_f64(bits))

    def __getitem__(self, name):
        return self.get(name)

    def __contains__(self, name):
        try:
            return name in self._index
        except TypeError:
            return False

    def __iter__(self):
        return iter(self._names)

    def __len__(self):
        return self._n

    def index(self, name):
        """The slot number of field `name` (for C-level readers)."""
        return self._slot(name)

    cdef uint32_t _slot(self, name) except? 0xFFFFFFFF:
        try:
            return self._index[name]
        except (KeyError, TypeError):
            raise unknown_field(name, self._fields) from None

    # ---- writes (the writer's handle only) -------------------------------

    def write(self, **values):
        """Set the named fields in one write (clamped; all or nothing)."""
        self._need_writer()
        self._apply(list(values.items()), False)

    def apply_delta(self, deltas):
        """Add ``{name: delta}`` to the fields in one write (clamped)."""
        self._need_writer()
        if not isinstance(deltas, Mapping):
            raise TypeError("apply_delta() takes a mapping of field names to numbers, "
                            f"got {type(deltas).__name__}")
        self._apply(list(deltas.items()), True)

    def write_tuple(self, values):
        """Set every field, in schema order, in one write."""
        self._need_writer()
        values = tuple(values)
        if len(values) != self._n:
            raise ValueError(f"write_tuple() needs {self._n} values in schema order "
                             f"({', '.join(self._names)}), got {len(values)}")
        self._apply(list(zip(self._names, values)), False)

    def writer(self, *names):
        """A callable that writes the given fields positionally: the fast path."""
        self._need_writer()
        if len(set(names)) != len(names):
            raise ValueError(f"writer() got a field name twice: {names!r}")
        if len(names) > 32:
            raise ValueError(f"writer() takes at most {32} fields, got {len(names)}")
        cdef SharedFieldWriter w = SharedFieldWriter.__new__(SharedFieldWriter, _INTERNAL)
        cdef Py_ssize_t k
        w._slots = tuple([self._slot(n) for n in names])
        for k in range(len(names)):
            w._idx[k] = w._slots[k]
        w._n = len(names)
        w._vitals = self
        return w

    cdef int _apply(self, list items, bint delta) except -1:
        cdef Py_ssize_t n = len(items), k
        if n == 0:
            return 0
        cdef uint32_t idx_stack[32]
        cdef uint64_t bits_stack[32]
        cdef uint32_t *idx = idx_stack
        cdef uint64_t *bits = bits_stack
        cdef bytearray scratch = None
        if n > 32:
            scratch = bytearray(n * 12)
            bits = <uint64_t *><char *>scratch
            idx = <uint32_t *>(<char *>scratch + n * 8)
        for k in range(n):
            name, value = items[k]
            idx[k] = self._slot(name)
            vitals_convert(self._fields[idx[k]], &self._info[idx[k]], value, delta, &bits[k])
        return self._commit(n, idx, bits, delta)

    cdef int _commit(self, Py_ssize_t n, uint32_t *idx, uint64_t *bits, bint delta) except -1:
        cdef Py_ssize_t k
        cdef uint32_t i
        self._lock()
        if delta:
            # Sums first, before anything is stored: a float that overflows
            # leaves the record as it was.
            for k in range(n):
                i = idx[k]
                if not vitals_add_delta(&self._info[i], csnap_latch_peek_bits(self._latch, i),
                                        &bits[k]):
                    csnap_latch_unlock(self._latch)
                    raise vitals_delta_overflow(self._fields[i],
                                                csnap_latch_peek_bits(self._latch, i), bits[k])
        csnap_latch_write(self._latch, <uint32_t>n, idx, bits)
        csnap_latch_unlock(self._latch)
        return 0

    # ---- test hooks ------------------------------------------------------

    def _hold_write_section(self):
        """TESTS ONLY: keep the writer threads' lock taken inside a `with` block.

        Nothing is stored; readers are not affected (they never wait for the
        writer); other writes by this handle wait and then raise
        `StalledWriterError`.
        """
        self._need_writer()
        return _held_lock(self)

    def _stop_inside_write(self, int half=1, **values):
        """TESTS ONLY: begin a write of `values` and stop inside it, for good.

        ``half=1`` stops after the first copy's first field is stored (readers
        are on the other copy), ``half=2`` inside the second copy.  The write
        lock stays taken: this handle can write no more.  Used to kill a
        writer in the middle of a write section.
        """
        if half not in (1, 2):
            raise ValueError(f"half must be 1 or 2, got {half!r}")
        items = list(values.items())
        if not items:
            raise ValueError("_stop_inside_write() needs at least one field value")
        cdef Py_ssize_t n = len(items), k
        cdef uint32_t idx[32]
        cdef uint64_t bits[32]
        if n > 32:
            raise ValueError(f"at most {32} fields")
        for k in range(n):
            idx[k] = self._slot(items[k][0])
            vitals_convert(self._fields[idx[k]], &self._info[idx[k]], items[k][1], False,
                           &bits[k])
        self._lock()
        cdef csnap_latch *l = self._latch
        cdef uint64_t s = csnap_latch_read_begin(l)
        cdef uint32_t c = <uint32_t>(s & 1)
        s = csnap_latch_switch(l, s)
        if half == 1:
            csnap_latch_store_bits(l, c, idx[0], bits[0])
            return
        for k in range(n):
            csnap_latch_store_bits(l, c, idx[k], bits[k])
        c = <uint32_t>(s & 1)
        s = csnap_latch_switch(l, s)
        csnap_latch_store_bits(l, c, idx[0], bits[0])

    def __repr__(self):
        version, values = self.read_versioned()
        body = ", ".join([f"{n}={v!r}" for n, v in zip(self._names, values)])
        role = "writer" if self.is_writer else "reader"
        return f"<SharedVitals {self.path} ({role}) {body} version={version}>"


def _held_lock(_SharedBase h):
    import contextlib

    @contextlib.contextmanager
    def held():
        h._lock()
        try:
            yield h
        finally:
            csnap_latch_unlock(h._latch)
    return held()


def _latch_address(_SharedBase h):
    """The address of the handle's latch (tests and the native harness)."""
    return <size_t>h._latch


@cython.auto_pickle(False)
cdef class SharedFieldWriter:
    """``v.writer("a", "b")(1.0, 2.0)``: a positional write of fixed fields of a `SharedVitals`."""

    def __cinit__(self, token=None):
        if token is not _INTERNAL:
            raise TypeError("SharedFieldWriter objects are made by SharedVitals.writer(*names) only")

    def __call__(self, *values):
        cdef SharedVitals v = self._vitals
        if v is None:
            raise RuntimeError("this SharedFieldWriter was not made by SharedVitals.writer()")
        cdef Py_ssize_t n = len(values), k
        if n != self._n:
            names = ", ".join([v._names[i] for i in self._slots])
            raise TypeError(f"this writer takes {self._n} values ({names}), got {n}")
        v._need_writer()
        if n == 0:
            return  # a writer of no fields: no section, no new version (as Vitals)
        cdef uint64_t bits[32]
        for k in range(n):
            vitals_convert(v._fields[self._idx[k]], &v._info[self._idx[k]], values[k], False,
                           &bits[k])
        v._commit(n, self._idx, bits, False)

    def __repr__(self):
        if self._vitals is None:
            return "<SharedFieldWriter (unbound)>"
        return f"<SharedFieldWriter ({', '.join([self._vitals._names[i] for i in self._slots])})>"


# ---- SharedBytes -------------------------------------------------------------

# Slots of a SharedBytes copy: the body's length, its version, then the body.
DEF BYTES_LEN = 0
DEF BYTES_VERSION = 1
DEF BYTES_DATA = 2
# Bodies at least this long are copied without the GIL.
DEF NOGIL_COPY = 65536
MAX_CAPACITY = 1 << 32


@cython.auto_pickle(False)
cdef class _BytesMemo:
    pass


@cython.auto_pickle(False)
cdef class SharedBytes(_SharedBase):
    """A versioned byte buffer in a named shared-memory segment.

    ``SharedBytes.create(name, capacity)`` makes it (fixed capacity in bytes)
    and returns the writer's handle: ``publish(data)``.  ``SharedBytes.open(name)``
    reads from any process: ``read() -> (version, bytes)``, one whole body of
    one version, never torn; an unchanged version returns the same bytes
    object without a copy.
    """
    @staticmethod
    def create(name, capacity, *, mode=0o600, timeout=1.0):
        """Make (or take over) segment `name` for bodies of up to `capacity` bytes."""
        path = _segment.segment_path(name)
        if isinstance(capacity, bool) or not isinstance(capacity, int) or not 0 < capacity <= MAX_CAPACITY:
            raise ValueError(f"capacity must be an int from 1 to {MAX_CAPACITY} bytes, "
                             f"got {capacity!r}")
        cdef double t = check_timeout(timeout)
        cdef uint32_t nslots = <uint32_t>(BYTES_DATA + (capacity + 7) // 8)
        header = _segment.layout(_segment.KIND_BYTES, b"", nslots, capacity,
                                 csnap_latch_size(nslots, 0))
        cdef SharedBytes self = SharedBytes.__new__(SharedBytes, _INTERNAL)
        self.path = path
        fd, tmp = _segment.new_file(path, header.size, mode)
        try:
            _segment.write_header(fd, header, b"")
            self._attach(fd, True, header, t)
        except BaseException:
            os.unlink(tmp)
            raise
        self.capacity = capacity
        csnap_latch_init(self._latch, nslots, 0)
        self._memo_box = [None]
        csnap_latch_set_writer_pid(self._latch, os.getpid())
        csnap_role_store(&self._writer, 1)
        if _segment.link_into_place(tmp, path):
            return self
        self = None
        fd, header, _ = _segment.open_for_takeover(path, _segment.KIND_BYTES)
        if header.capacity != capacity:
            os.close(fd)
            raise SegmentError(f"{path}: the segment's capacity is {header.capacity} bytes, "
                               f"not {capacity}; create it with the same capacity, or unlink "
                               "it first")
        cdef SharedBytes succ = SharedBytes.__new__(SharedBytes, _INTERNAL)
        succ.path = path
        succ._attach(fd, True, header, t)
        succ._check(header)
        csnap_latch_recover(succ._latch)
        csnap_latch_set_writer_pid(succ._latch, os.getpid())
        csnap_role_store(&succ._writer, 1)
        return succ

    @staticmethod
    def open(name, *, timeout=1.0):
        """Attach a reader's handle to segment `name` (any process)."""
        path = _segment.segment_path(name)
        cdef double t = check_timeout(timeout)
        fd, writable, header, _ = _segment.open_reader(path, _segment.KIND_BYTES)
        cdef SharedBytes self = SharedBytes.__new__(SharedBytes, _INTERNAL)
        self.path = path
        self._attach(fd, writable, header, t)
        self._check(header)
        return self

    cdef int _check(self, header) except -1:
        if not (0 < header.capacity <= MAX_CAPACITY
                and header.nslots == BYTES_DATA + (header.capacity + 7) // 8):
            raise SegmentError(f"{self.path}: corrupt header (capacity {header.capacity} "
                               f"does not match {header.nslots} slots)")
        self._check_latch(header, 0)
        self.capacity = header.capacity
        self._memo_box = [None]
        return 0

    @property
    def version(self):
        """The version of the body readers get now (0 before the first publish)."""
        return self._current_version()

    cdef object _current_version(self):
        # The version slot alone, consistently: no copy of the body.
        cdef csnap_latch *l = self._latch
        cdef uint64_t s, ver
        while True:
            s = csnap_latch_read_begin(l)
            ver = csnap_latch_load_bits(l, s, BYTES_VERSION)
            if not csnap_latch_read_retry(l, s):
                return ver

    def publish(self, data, version=None):
        """Publish `data` (bytes-like) as the next version, or as `version` (> the current).

        A body larger than the capacity raises ValueError and changes nothing.
        Returns the version published.
        """
        self._need_writer()
        cdef Py_buffer view
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        cdef uint64_t ver
        cdef csnap_latch *l = self._latch
        cdef uint64_t s
        cdef uint32_t c
        cdef int half
        cdef size_t length = <size_t>view.len
        try:
            if length > self.capacity:
                raise ValueError(f"{self.path}: a body of {length} bytes does not fit the "
                                 f"segment's capacity of {self.capacity} bytes; nothing was "
                                 "published")
            self._lock()
            try:
                current = csnap_latch_peek_bits(l, BYTES_VERSION)
                if version is None:
                    ver = current + 1
                else:
                    if isinstance(version, bool) or not isinstance(version, int):
                        raise TypeError(f"version must be an int, got {version!r}")
                    if not current < version <= INT64_MAX:
                        raise ValueError(f"version must be greater than the current version "
                                         f"{current} (and < 2**63), got {version!r}; nothing "
                                         "was published")
                    ver = version
                with nogil:
                    s = csnap_latch_writer_seq(l)
                    for half in range(2):
                        c = <uint32_t>(s & 1)
                        s = csnap_latch_switch(l, s)
                        csnap_latch_store_bits(l, c, BYTES_LEN, length)
                        csnap_latch_store_bits(l, c, BYTES_VERSION, ver)
                        csnap_latch_store_bytes(l, c, BYTES_DATA, <const unsigned char *>view.buf,
                                                length)
                    csnap_latch_notify(l, s)
            finally:
                csnap_latch_unlock(l)
        finally:
            PyBuffer_Release(&view)
        return ver

    cdef _BytesMemo _read_memo(self):
        cdef csnap_latch *l = self._latch
        cdef uint64_t s = csnap_latch_read_begin(l)
        cdef _BytesMemo m = <_BytesMemo>csnap_cell_load(self._memo_box)
        if m is not None and (m.seq == s or ((s & 1) and m.seq + 1 == s)):
            return m
        cdef uint64_t length, ver
        cdef bytes out
        cdef unsigned char *dst
        cdef int attempt = 0
        cdef int64_t deadline = 0
        while True:
            s = csnap_latch_read_begin(l)
            length = csnap_latch_load_bits(l, s, BYTES_LEN)
            ver = csnap_latch_load_bits(l, s, BYTES_VERSION)
            if length <= self.capacity:
                out = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>length)
                dst = <unsigned char *>PyBytes_AS_STRING(out)
                if length >= NOGIL_COPY:
                    with nogil:
                        csnap_latch_load_bytes(l, s, BYTES_DATA, dst, length)
                else:
                    csnap_latch_load_bytes(l, s, BYTES_DATA, dst, length)
                if not csnap_latch_read_retry(l, s):
                    break
            # A publish overtook this copy: try again, bounded.
            attempt += 1
            if attempt == 64:
                deadline = csnap_monotonic_ns() + (self._timeout_ns if self._timeout_ns >= 0
                                                   else INT64_MAX // 2)
            if attempt > 64:
                if csnap_monotonic_ns() > deadline:
                    raise StalledWriterError(f"{self.path}: the writer overtook every read "
                                             f"for {self._timeout} s")
                with nogil:
                    csnap_sleep_ns(10000)
        m = _BytesMemo.__new__(_BytesMemo)
        m.seq = s
        m.version = ver
        m.data = out
        csnap_cell_store(self._memo_box, m)
        return m

    def read(self):
        """``(version, body)``: one whole published body; the same object while unchanged."""
        cdef _BytesMemo m = self._read_memo()
        return (m.version, m.data)

    def _stop_inside_publish(self, data, int half=1):
        """TESTS ONLY: begin publishing `data` and stop inside the write, for good."""
        if half not in (1, 2):
            raise ValueError(f"half must be 1 or 2, got {half!r}")
        data = bytes(data)
        if len(data) > self.capacity:
            raise ValueError("too large")
        self._lock()
        cdef csnap_latch *l = self._latch
        cdef uint64_t ver = csnap_latch_peek_bits(l, BYTES_VERSION) + 1
        cdef uint64_t s = csnap_latch_read_begin(l)
        cdef uint32_t c = <uint32_t>(s & 1)
        cdef size_t length = len(data)
        s = csnap_latch_switch(l, s)
        csnap_latch_store_bits(l, c, BYTES_LEN, length)
        csnap_latch_store_bits(l, c, BYTES_VERSION, ver)
        if half == 1:
            csnap_latch_store_bytes(l, c, BYTES_DATA, <const unsigned char *><char *>data,
                                    length // 2)
            return
        csnap_latch_store_bytes(l, c, BYTES_DATA, <const unsigned char *><char *>data, length)
        c = <uint32_t>(s & 1)
        s = csnap_latch_switch(l, s)
        csnap_latch_store_bits(l, c, BYTES_LEN, length)
        csnap_latch_store_bytes(l, c, BYTES_DATA, <const unsigned char *><char *>data,
                                length // 2)

    def __repr__(self):
        role = "writer" if self.is_writer else "reader"
        return f"<SharedBytes {self.path} ({role}) capacity={self.capacity} version={self.version}>"
