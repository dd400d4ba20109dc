# cython: language_level=3, freethreading_compatible=True, boundscheck=False, wraparound=False
"""The native `Vitals`: named numeric fields behind the C seqlock of csnap_seqlock.h.

Two record layouts, one API: the classic seqlock (``layout="classic"``, one
copy: a reader that overlaps a write retries, and falls back to the writers'
lock when a writer flat out overtakes every attempt) and the latch
(``layout="latch"``, two copies: readers read the copy not being written, so
they never wait for a write in progress).

Reads are optimistic and lock-free.  Python-level reads of unchanged data
return a memoised tuple (one counter load and one list read); only the first
read after a write boxes the values.  Writes validate and convert every value
first, then hold the write section for a handful of atomic stores - nothing in
a section can raise.
"""

cimport cython
from cpython.dict cimport PyDict_SetItem
from cpython.float cimport PyFloat_AS_DOUBLE, PyFloat_FromDouble
from cpython.long cimport PyLong_FromLongLong
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF, Py_INCREF
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from libc.math cimport floor, isfinite
from libc.stdint cimport INT64_MAX, INT64_MIN, int64_t, uint32_t, uint64_t

from csnapshot._cpython cimport (
    PyDict_GetItemWithError, PyLong_AsDouble, PyLong_AsLongLongAndOverflow,
)
from csnapshot._pycell cimport *
from csnapshot._seqlock cimport *

from collections.abc import Mapping

from csnapshot._schema import (
    Field, StalledWriterError, check_layout, check_schema, check_timeout, coerce, timeout_forever,
    unknown_field,
)

DEF STACK_SLOTS = 32

# Passed to the constructors of the internal types by this module only: a
# module-level cdef, so Python code cannot name it, and FieldWriter and
# _HeldSection objects exist only as Vitals.writer() and
# Vitals._hold_write_section() made them.
cdef object _INTERNAL = object()


cdef object _not_initialised(object self):
    return RuntimeError(
        f"this {type(self).__name__} object is not initialised: Vitals.__init__ did not run "
        "(a subclass __init__ must call super().__init__(fields, ...))")


@cython.auto_pickle(False)
cdef class _Memo:
    pass


# Keys of the per-thread memo slots (free-threaded builds): a record uses slot
# uid % 8 of each reader thread's private dict, so a thread keeps at most 8
# memos, whatever number of records it reads.  Private objects, so no other
# code's keys can collide with them.
@cython.auto_pickle(False)
cdef class _MemoKey:
    pass

cdef tuple _MEMO_KEYS = tuple([_MemoKey() for _ in range(8)])


@cython.final
@cython.auto_pickle(False)
cdef class _Scratch:
    # Index and value buffers for one write or read of more than STACK_SLOTS
    # fields (see _buffers).
    cdef uint32_t *idx
    cdef uint64_t *bits

    def __cinit__(self, Py_ssize_t n):
        if n <= 0 or n > 1 << 20:
            raise ValueError(f"_Scratch needs 1 to {1 << 20} slots, got {n}")
        self.idx = <uint32_t *>PyMem_Malloc(n * sizeof(uint32_t))
        self.bits = <uint64_t *>PyMem_Malloc(n * sizeof(uint64_t))
        if self.idx == NULL or self.bits == NULL:
            raise MemoryError()

    def __dealloc__(self):
        PyMem_Free(self.idx)
        PyMem_Free(self.bits)


# The index and value buffers of one write (or one read): on the caller's
# stack for up to STACK_SLOTS fields, else in a _Scratch that the caller keeps
# alive for as long as it uses the pointers.
cdef struct _Buffers:
    uint32_t idx_stack[STACK_SLOTS]
    uint64_t bits_stack[STACK_SLOTS]
    uint32_t *idx
    uint64_t *bits


cdef _Scratch _buffers(_Buffers *b, Py_ssize_t n):
    """Point b.idx/b.bits at n slots; returns the heap scratch (None on the stack path)."""
    cdef _Scratch scratch = None
    if n > STACK_SLOTS:
        scratch = _Scratch(n)
        b.idx, b.bits = scratch.idx, scratch.bits
    else:
        b.idx, b.bits = b.idx_stack, b.bits_stack
    return scratch


cdef int vitals_convert(object field, const csnap_slot_info *info, object value, bint delta,
                        uint64_t *out) except -1:
    # Check one value and turn it into slot bits (clamped, unless it is a
    # delta: deltas are added to the current value inside the section).
    # Exact floats and ints take the fast paths; anything else, and every
    # error, goes through the shared Python rules in _schema.coerce so
    # both implementations accept and reject exactly the same values.
    cdef double d
    cdef long long ll
    cdef int overflow = 0
    if type(value) is not float and type(value) is not int:
        value = coerce(field, value, delta=delta)
    if info.kind == CSNAP_F64:
        if type(value) is float:
            d = PyFloat_AS_DOUBLE(value)
            if not isfinite(d):
                coerce(field, value, delta=delta)  # raises
        else:
            try:
                d = PyLong_AsDouble(value)
            except OverflowError:
                coerce(field, value, delta=delta)  # raises
                raise
        out[0] = csnap_f64_bits(d if delta else csnap_clamp_f64(info, d))
        return 0
    if type(value) is float:
        d = PyFloat_AS_DOUBLE(value)
        if not isfinite(d) or d != floor(d):
            coerce(field, value, delta=delta)  # raises
        if d >= 9223372036854775808.0:
            ll = INT64_MAX
        elif d < -9223372036854775808.0:
            ll = INT64_MIN
        else:
            ll = <long long>d
    else:
        ll = PyLong_AsLongLongAndOverflow(value, &overflow)
        if overflow > 0:
            ll = INT64_MAX
        elif overflow < 0:
            ll = INT64_MIN
    out[0] = csnap_i64_bits(ll if delta else csnap_clamp_i64(info, ll))
    return 0


cdef bint vitals_add_delta(const csnap_slot_info *info, uint64_t current,
                           uint64_t *bits) noexcept:
    # *bits (a delta from vitals_convert) becomes current + delta, clamped; an
    # int sum saturates at the int64 range.  False, with *bits unchanged, when
    # a float sum is not finite: the caller leaves the record as it was.
    cdef double total
    if info.kind == CSNAP_F64:
        total = csnap_bits_f64(current) + csnap_bits_f64(bits[0])
        if not isfinite(total):
            return False
        bits[0] = csnap_f64_bits(csnap_clamp_f64(info, total))
    else:
        bits[0] = csnap_i64_bits(csnap_add_i64(info, csnap_bits_i64(current),
                                               csnap_bits_i64(bits[0])))
    return True


cdef object vitals_delta_overflow(object field, uint64_t current, uint64_t delta):
    # The error for a float delta vitals_add_delta() refused.
    cdef double total = csnap_bits_f64(current) + csnap_bits_f64(delta)
    return ValueError(f"delta for field {field.name!r} would make it {total!r}; "
                      "the record is unchanged")


@cython.auto_pickle(False)
cdef class Vitals:
    """A record of named numeric fields: consistent reads, all-or-nothing writes.

    ``Vitals(fields, *, timeout=1.0, layout="classic")`` builds a record from a
    sequence of `Field`.  ``timeout`` bounds how long a reader or a second
    writer waits for a write section that stays open (normally nanoseconds)
    before raising `StalledWriterError`.  ``layout``: ``"classic"`` (one copy;
    the fastest writes) or ``"latch"`` (two copies: readers never wait for an
    open write, so a writer flat out cannot starve them; a write stores every
    field twice).  See docs/design.md, "Choosing a layout".
    """

    def __cinit__(self):
        self._rec = NULL
        self._latch = NULL
        self._info = NULL
        self._claimed = 0

    def __init__(self, fields, *, timeout=1.0, layout="classic"):
        schema = check_schema(fields)
        cdef double t = check_timeout(timeout)
        cdef bint latch = check_layout(layout)
        # One __init__ per object, ever, even when two threads race to run
        # it: the exchange picks the one that fills the fields (relaxed: it
        # only elects; the fields reach other threads through the release
        # store of _rec below).  Validation comes first, so a bad schema
        # leaves the object initialisable.
        if csnap_int_exchange(&self._claimed, 1) != 0:
            raise RuntimeError("Vitals.__init__ may only be called once")
        self._timeout = t
        # "Forever" (see check_timeout) is -1 for the C waits.  Finite
        # timeouts are below threading.TIMEOUT_MAX, so the product fits.
        self._timeout_ns = -1 if timeout_forever(t) else <int64_t>(t * 1e9)
        self._fields = schema
        self._names = tuple([f.name for f in schema])
        self._index = {f.name: i for i, f in enumerate(schema)}
        self._n = <uint32_t>len(schema)
        cdef csnap_slot_info *info
        if latch:
            self._latch = csnap_latch_alloc(self._n)
            if self._latch == NULL:
                raise MemoryError()
            info = csnap_latch_info(self._latch)
        else:
            self._rec = csnap_record_alloc(self._n)
            if self._rec == NULL:
                raise MemoryError()
            info = csnap_info(self._rec)
        cdef uint32_t i
        cdef uint64_t bits
        for i in range(self._n):
            f = schema[i]
            if f.kind is int:
                info[i].kind = CSNAP_I64
                info[i].imin = INT64_MIN if f.min is None else f.min
                info[i].imax = INT64_MAX if f.max is None else f.max
                bits = csnap_i64_bits(f.default)
            else:
                info[i].kind = CSNAP_F64
                if f.min is not None:
                    info[i].fmin = f.min
                if f.max is not None:
                    info[i].fmax = f.max
                bits = csnap_f64_bits(f.default)
            self._init_slot(i, bits)
        self._uid = csnap_next_uid()
        self._memo_key = _MEMO_KEYS[self._uid & 7]
        cdef _Memo memo = _Memo.__new__(_Memo)
        memo.seq = 0
        memo.uid = self._uid
        memo.values = tuple([f.default for f in schema])
        self._memo_box = [memo]
        # Last: release pairs with the acquire in _ready(), so a thread that
        # sees the bounds table sees the record and every field set above.
        csnap_ptr_store_release(<void **>&self._info, info)

    cdef void _init_slot(self, uint32_t i, uint64_t bits) noexcept:
        # Before anyone else can see the record: every copy of slot i.
        if self._latch != NULL:
            csnap_latch_store_bits(self._latch, 0, i, bits)
            csnap_latch_store_bits(self._latch, 1, i, bits)
        else:
            csnap_store_bits(self._rec, i, bits)

    cdef csnap_slot_info *_ready(self) except NULL:
        # Every entry point starts here: an object whose __init__ never ran
        # (Vitals.__new__(Vitals), a subclass that skipped super().__init__)
        # has no record, and raises instead of dereferencing NULL.
        cdef csnap_slot_info *info = <csnap_slot_info *>csnap_ptr_load_acquire(
            <void **>&self._info)
        if info == NULL:
            raise _not_initialised(self)
        return info

    cdef csnap_record *_record(self) except NULL:
        # The classic record, for the stress harness's classic loops.
        self._ready()
        if self._rec == NULL:
            raise TypeError("this Vitals has the latch layout: it has no classic record "
                            "(C code: use vitals_latch())")
        return self._rec

    def __dealloc__(self):
        if self._rec != NULL:
            csnap_record_free(self._rec)
            self._rec = NULL
        if self._latch != NULL:
            csnap_latch_free(self._latch)
            self._latch = NULL

    # ---- reads ----------------------------------------------------------

    @property
    def fields(self):
        """The schema: a tuple of `Field`, in slot order."""
        self._ready()
        return self._fields

    @property
    def layout(self):
        """``"classic"`` or ``"latch"``: the record's layout (see the class doc)."""
        self._ready()
        return "latch" if self._latch != NULL else "classic"

    @property
    def version(self):
        """Completed write sections since the record was created."""
        self._ready()
        if self._latch != NULL:
            return csnap_latch_version(self._latch)
        return csnap_version(self._rec)

    cdef uint64_t _begin(self) except? 0xFFFFFFFFFFFFFFFF:
        # The counter a read starts from, either layout (acquire: pairing A
        # of the classic record, L1 of the latch).  Both count so that a memo
        # read at s is still what readers see at s + 1 (odd): the classic
        # record's open section, the latch's first half-write (readers are on
        # the copy it left alone).
        self._ready()
        if self._latch != NULL:
            return csnap_latch_read_begin(self._latch)
        return csnap_read_begin(self._rec)

    def read_tuple(self):
        """All values, in schema order, as one consistent tuple."""
        cdef uint64_t s = self._begin()
        cdef _Memo m = self._memo()
        # Unchanged since the memo was read; or a write is open that began
        # right after it, so the memo is the state that write started from
        # (a read overlapping a write may return the state before it).
        if m is not None and (m.seq == s or ((s & 1) and m.seq + 1 == s)):
            m.taken = True
            return m.values
        return self._fresh().values

    def read_versioned(self):
        """``(version, values)``: a consistent tuple and the version it shows."""
        cdef uint64_t s = self._begin()
        cdef _Memo m = self._memo()
        if m is None or not (m.seq == s or ((s & 1) and m.seq + 1 == s)):
            m = self._fresh()
        m.taken = True
        return (m.seq >> 1, m.values)

    def read(self):
        """All values as a new ``{name: value}`` dict, one consistent copy."""
        cdef tuple values = self.read_tuple()
        cdef tuple names = self._names
        cdef dict out = {}
        cdef Py_ssize_t i
        for i in range(self._n):
            PyDict_SetItem(out, names[i], values[i])
        return out

    def get(self, name):
        """One field's current value (a single atomic load)."""
        cdef csnap_slot_info *info = self._ready()
        cdef uint32_t i = self._slot(name)
        cdef uint64_t bits
        if self._latch != NULL:
            # The copy readers are sent to (one slot: nothing to validate).
            bits = csnap_latch_load_bits(self._latch, csnap_latch_read_begin(self._latch), i)
        else:
            bits = csnap_load_bits(self._rec, i)
        if info[i].kind == CSNAP_I64:
            return PyLong_FromLongLong(csnap_bits_i64(bits))
        return PyFloat_FromDouble(csnap_bits_f64(bits))

    def __getitem__(self, name):
        return self.get(name)

    def __contains__(self, name):
        self._ready()
        try:
            return name in self._index
        except TypeError:
            return False

    def __iter__(self):
        self._ready()
        return iter(self._names)

    def __len__(self):
        self._ready()
        return self._n

    def index(self, name):
        """The slot number of field `name` (for C-level readers and writers)."""
        self._ready()
        return self._slot(name)

    cdef uint32_t _slot(self, name) except? 0xFFFFFFFF:
        # Callers have checked _ready(); the index comes from our own dict,
        # so it is < _n.
        try:
            return self._index[name]
        except (KeyError, TypeError):
            raise unknown_field(name, self._fields) from None

    cdef _Memo _memo(self):
        # The newest memo this thread may use, or None.  GIL builds share one
        # memo cell between all threads (the GIL serialises the reference
        # counting).  Free-threaded builds keep a memo per reader thread:
        # a shared one would make every read an atomic refcount update on one
        # cache line, and readers would slow each other down.
        cdef PyObject *d
        cdef PyObject *item
        if not CSNAP_FREE_THREADED:
            return <_Memo>csnap_cell_load(self._memo_box)
        d = csnap_thread_dict()
        if d == NULL:
            return None
        item = PyDict_GetItemWithError(<object>d, self._memo_key)
        if item == NULL or (<_Memo>item).uid != csnap_u64_load_relaxed(&self._uid):
            return None
        return <_Memo>item

    cdef int _keep_memo(self, _Memo m) except -1:
        cdef PyObject *d
        cdef _Memo old
        if not CSNAP_FREE_THREADED:
            old = <_Memo>csnap_cell_load(self._memo_box)
            if m.seq > old.seq:
                csnap_cell_store(self._memo_box, m)
            return 0
        d = csnap_thread_dict()
        if d != NULL:
            PyDict_SetItem(<object>d, self._memo_key, m)
        return 0

    cdef _Memo _fresh(self):
        # Read and box the current values, and publish them as the memo.
        cdef _Memo m = self._read_memo()
        m.taken = True
        self._keep_memo(m)
        return m

    cdef _Memo _read_memo(self):
        # One consistent copy of the values, boxed, with the counter it shows.
        # The only path that boxes a copy: it never boxes a buffer that
        # csnap_read() / csnap_latch_read() gave up on (CSNAP_BUSY), it takes
        # the locked fallback.
        self._ready()
        cdef csnap_record *rec = self._rec
        cdef csnap_latch *latch = self._latch
        cdef _Buffers b
        cdef _Scratch scratch = _buffers(&b, self._n)   # keeps a heap buffer alive
        cdef uint64_t *buf = b.bits
        cdef uint64_t seq = 0
        cdef int rc
        cdef _Memo m
        if latch != NULL:
            rc = csnap_latch_read(latch, self._n, buf, &seq, NULL)
        else:
            rc = csnap_read(rec, buf, &seq, NULL)
        if rc == CSNAP_BUSY:
            # Every bounded attempt overlapped a write: the writer is stalled
            # (classic layout only: a latch reader never waits for one) or
            # writing flat out.  Take the writers' lock once (waiting without
            # the GIL, so a Python writer can finish its section).
            with nogil:
                if latch != NULL:
                    rc = csnap_latch_read_locked(latch, self._n, buf, &seq, self._timeout_ns)
                else:
                    rc = csnap_read_locked(rec, buf, &seq, self._timeout_ns)
            if rc != CSNAP_OK:
                raise StalledWriterError(
                    f"Vitals: a write section stayed open for over {self._timeout} s; "
                    "the writer is stalled inside it")
        m = _Memo.__new__(_Memo)
        m.seq = seq
        m.uid = csnap_u64_load_relaxed(&self._uid)
        m.values = self._box(buf)
        return m

    cdef tuple _box(self, uint64_t *buf):
        cdef tuple out = PyTuple_New(self._n)
        cdef csnap_slot_info *info = self._info
        cdef uint32_t i
        for i in range(self._n):
            if info[i].kind == CSNAP_I64:
                v = PyLong_FromLongLong(csnap_bits_i64(buf[i]))
            else:
                v = PyFloat_FromDouble(csnap_bits_f64(buf[i]))
            Py_INCREF(v)
            PyTuple_SET_ITEM(out, i, v)
        return out

    # ---- writes ---------------------------------------------------------

    def write(self, **values):
        """Set the named fields in one write section (clamped; all or nothing)."""
        self._ready()
        self._apply_dict(values, False)

    cdef _apply_dict(self, dict values, bint delta):
        # {name: value} from a plain dict: no intermediate list.
        cdef Py_ssize_t n = len(values)
        if n == 0:
            return
        cdef _Buffers buf
        cdef _Scratch scratch = _buffers(&buf, n)   # keeps a heap buffer alive
        cdef uint32_t *idx = buf.idx
        cdef uint64_t *bits = buf.bits
        cdef Py_ssize_t pos = 0, k = 0
        cdef PyObject *key
        cdef PyObject *value
        cdef object okey, ovalue
        # Strong references, taken inside the dict's critical section before
        # anything that can run Python code (the key's __hash__/__eq__ in
        # _slot, the value's __index__/__float__ in _convert): that code, or
        # another thread, may replace or remove the entry and free it.
        while csnap_dict_next_ref(values, &pos, &key, &value):
            okey = <object>key
            ovalue = <object>value
            Py_DECREF(okey)      # the <object> casts took their own references
            Py_DECREF(ovalue)
            if k == n:
                raise RuntimeError("dictionary changed size during iteration")
            idx[k] = self._slot(okey)
            self._convert(idx[k], ovalue, delta, &bits[k])
            k += 1
        if k != n or len(values) != n:
            raise RuntimeError("dictionary changed size during iteration")
        self._commit(k, idx, bits, delta)

    def apply_delta(self, deltas):
        """Add ``{name: delta}`` to the fields in one write section (clamped)."""
        self._ready()
        if type(deltas) is dict:
            return self._apply_dict(deltas, True)
        if not isinstance(deltas, Mapping):
            raise TypeError("apply_delta() takes a mapping of field names to numbers, "
                            f"got {type(deltas).__name__}")
        items = list(deltas.items())
        cdef Py_ssize_t n = len(items)
        if n == 0:
            return
        cdef _Buffers buf
        cdef _Scratch scratch = _buffers(&buf, n)   # keeps a heap buffer alive
        cdef uint32_t *idx = buf.idx
        cdef uint64_t *bits = buf.bits
        cdef Py_ssize_t k
        for k in range(n):
            name, delta = items[k]
            idx[k] = self._slot(name)
            self._convert(idx[k], delta, True, &bits[k])
        self._commit(n, idx, bits, True)

    def write_tuple(self, values):
        """Set every field, in schema order, in one write section."""
        self._ready()
        values = tuple(values)
        cdef Py_ssize_t n = len(values)
        if n != self._n:
            raise ValueError(f"write_tuple() needs {self._n} values in schema order "
                             f"({', '.join(self._names)}), got {n}")
        cdef _Buffers buf
        cdef _Scratch scratch = _buffers(&buf, n)   # keeps a heap buffer alive
        cdef uint32_t *idx = buf.idx
        cdef uint64_t *bits = buf.bits
        cdef uint32_t k
        for k in range(<uint32_t>n):
            idx[k] = k
            self._convert(k, values[k], False, &bits[k])
        self._commit(n, idx, bits, False)

    def writer(self, *names):
        """A callable that writes the given fields positionally: the fast path.

        ``w = v.writer("energy", "stability"); w(50.0, 0.5)`` is one write
        section, without keyword parsing or name lookups per call.
        """
        self._ready()
        if len(set(names)) != len(names):
            raise ValueError(f"writer() got a field name twice: {names!r}")
        if len(names) > STACK_SLOTS:
            raise ValueError(f"writer() takes at most {STACK_SLOTS} fields, got {len(names)}")
        cdef FieldWriter w = FieldWriter.__new__(FieldWriter, _INTERNAL)
        cdef Py_ssize_t k
        w._slots = tuple([self._slot(n) for n in names])
        for k in range(len(names)):
            w._idx[k] = w._slots[k]   # from _slot(): each < self._n
        w._n = len(names)
        w._vitals = self              # last: a writer without it refuses calls
        return w

    cdef int _convert(self, uint32_t i, object value, bint delta, uint64_t *out) except -1:
        return vitals_convert(self._fields[i], &self._info[i], value, delta, out)

    cdef int _commit(self, Py_ssize_t n, uint32_t *idx, uint64_t *bits, bint delta) except -1:
        # The write section: only atomic stores and arithmetic that cannot fail.
        cdef csnap_record *rec = self._rec
        cdef csnap_slot_info *info = self._info
        cdef uint64_t seq
        cdef int rc = CSNAP_OK
        cdef Py_ssize_t k
        cdef uint32_t i
        # GIL builds, while readers are reading (they took the current memo):
        # the writer leaves them the new values boxed (below), so the first
        # read after a write is a memo hit instead of a reader boxing a copy
        # while the writer may already be in its next section.  Without
        # readers a write boxes nothing.  The buffer is taken before the
        # section, which must not allocate.  (Free-threaded builds keep a memo
        # per reader thread, which the writer cannot fill.)
        cdef _Buffers after
        cdef _Scratch keep = None
        cdef bint leave = (not CSNAP_FREE_THREADED
                           and (<_Memo>csnap_cell_load(self._memo_box)).taken)
        if self._latch != NULL:
            return self._commit_latch(n, idx, bits, delta, leave)
        if leave:
            keep = _buffers(&after, self._n)
        if not csnap_write_try_begin(rec, &seq):
            # Another writer holds the section: wait for it without the GIL
            # (it may be a Python thread that needs the GIL to finish).
            with nogil:
                rc = csnap_write_begin(rec, self._timeout_ns, &seq)
            if rc != CSNAP_OK:
                raise self._writer_stalled()
        if delta:
            # Every sum first, before anything is stored: one that overflows to
            # inf must leave the record as it was (an inf cannot be serialised).
            for k in range(n):
                i = idx[k]
                if not vitals_add_delta(&info[i], csnap_write_peek_bits(rec, i), &bits[k]):
                    csnap_write_abort_unchanged(rec, seq)
                    raise vitals_delta_overflow(self._fields[i], csnap_write_peek_bits(rec, i),
                                                bits[k])
        for k in range(n):
            csnap_store_bits(rec, idx[k], bits[k])
        if leave:
            # The section holder's own view of every slot: nobody else stores now.
            for i in range(<uint32_t>self._n):
                after.bits[i] = csnap_write_peek_bits(rec, i)
        csnap_write_end(rec, seq)
        if leave:
            self._leave_memo(seq + 1, after.bits)
        return 0

    cdef int _commit_latch(self, Py_ssize_t n, uint32_t *idx, uint64_t *bits, bint delta,
                           bint leave) except -1:
        # _commit for the latch layout: the writer threads' lock, the final
        # bits of every field computed before anything is stored, then both
        # halves (csnap_latch_write_quiet: nobody waits on an in-process latch).
        cdef csnap_latch *latch = self._latch
        cdef csnap_slot_info *info = self._info
        cdef _Buffers after
        cdef _Scratch keep = None
        cdef uint64_t seq
        cdef int rc = CSNAP_OK
        cdef Py_ssize_t k
        cdef uint32_t i
        if leave:
            keep = _buffers(&after, self._n)
        if not csnap_latch_try_lock(latch):
            # Another writer thread holds the lock: wait for it without the GIL.
            with nogil:
                rc = csnap_latch_lock(latch, self._timeout_ns)
            if rc != CSNAP_OK:
                raise self._writer_stalled()
        if delta:
            # Every sum first: one that overflows leaves the record as it was.
            for k in range(n):
                i = idx[k]
                if not vitals_add_delta(&info[i], csnap_latch_peek_bits(latch, i), &bits[k]):
                    csnap_latch_unlock(latch)
                    raise vitals_delta_overflow(self._fields[i], csnap_latch_peek_bits(latch, i),
                                                bits[k])
        seq = csnap_latch_write_quiet(latch, <uint32_t>n, idx, bits)
        if leave:
            for i in range(<uint32_t>self._n):
                after.bits[i] = csnap_latch_peek_bits(latch, i)
        csnap_latch_unlock(latch)
        if leave:
            self._leave_memo(seq, after.bits)
        return 0

    cdef object _writer_stalled(self):
        # Either layout's error for a writer that waited out `timeout`.
        return StalledWriterError(f"Vitals: another writer kept its write section open for "
                                  f"over {self._timeout} s")

    cdef int _leave_memo(self, uint64_t seq, uint64_t *bits) except -1:
        # The memo of the version this writer just closed (seq, even).  The write
        # has happened: a failure to box it only costs readers a fresh read.
        cdef _Memo m
        try:
            m = _Memo.__new__(_Memo)
            m.seq = seq
            m.uid = csnap_u64_load_relaxed(&self._uid)
            m.values = self._box(bits)
        except MemoryError:
            return 0
        self._keep_memo(m)
        return 0

    # ---- copying, pickling, repr ----------------------------------------

    def __copy__(self):
        return _restore(*self.__reduce__()[1])

    def __deepcopy__(self, memo):
        return self.__copy__()

    def __reduce__(self):
        values = self.read_tuple()
        if self._latch == NULL:   # the classic form: what older pickles hold too
            return (_restore, (type(self), self._fields, values, self._timeout))
        return (_restore, (type(self), self._fields, values, self._timeout, "latch"))

    def __repr__(self):
        if csnap_ptr_load_acquire(<void **>&self._info) == NULL:
            return f"<{type(self).__name__} (not initialised)>"
        version, values = self.read_versioned()
        body = ", ".join([f"{n}={v!r}" for n, v in zip(self._names, values)])
        return f"<Vitals {body} version={version}>"

    # ---- test hook ------------------------------------------------------

    def _hold_write_section(self):
        """Open a write section and keep it open until the `with` block ends.

        For tests of stalled writers only: readers and other writers see a
        writer stopped inside its section.  Nothing is stored; on exit the
        counter returns to its previous value.
        """
        self._ready()
        cdef _HeldSection h = _HeldSection.__new__(_HeldSection, _INTERNAL)
        h._vitals = self
        return h


@cython.final
@cython.auto_pickle(False)
cdef class FieldWriter:
    """Writes a fixed list of fields positionally: ``writer(1.0, 2.0)``.

    Made only by `Vitals.writer`, which validates every slot index against
    the record; nothing changes them afterwards (no ``__init__``, no
    pickling), so a call can trust them.
    """
    cdef Vitals _vitals
    cdef tuple _slots
    cdef uint32_t _idx[STACK_SLOTS]
    cdef Py_ssize_t _n

    def __cinit__(self, token=None):
        if token is not _INTERNAL:
            raise TypeError("FieldWriter objects are made by Vitals.writer(*names) only")

    def __call__(self, *values):
        if self._vitals is None:
            raise RuntimeError("this FieldWriter was not made by Vitals.writer()")
        cdef Py_ssize_t n = len(values)
        if n != self._n:
            names = ", ".join([self._vitals._names[i] for i in self._slots])
            raise TypeError(f"this writer takes {self._n} values ({names}), got {n}")
        if n == 0:
            return  # a writer of no fields: no section, no new version (as the twin)
        cdef uint64_t bits[STACK_SLOTS]
        cdef Py_ssize_t k
        for k in range(n):
            self._vitals._convert(self._idx[k], values[k], False, &bits[k])
        self._vitals._commit(n, self._idx, bits, False)

    def __repr__(self):
        if self._vitals is None:
            return "<FieldWriter (unbound)>"
        names = ", ".join([self._vitals._names[i] for i in self._slots])
        return f"<FieldWriter ({names})>"


@cython.final
@cython.auto_pickle(False)
cdef class _HeldSection:
    # Made only by Vitals._hold_write_section() (which sets _vitals).
    cdef Vitals _vitals
    # The odd counter of the open section, 0 when none is open.  One word,
    # exchanged atomically on exit, so two threads leaving one held section
    # cannot both abort it (the second would close some other writer's
    # section).
    cdef uint64_t _held

    def __cinit__(self, token=None):
        if token is not _INTERNAL:
            raise TypeError("_HeldSection objects are made by Vitals._hold_write_section() only")

    def __enter__(self):
        if self._vitals is None:
            raise RuntimeError("this _HeldSection was not made by Vitals._hold_write_section()")
        self._vitals._ready()
        cdef csnap_record *rec = self._vitals._rec
        cdef csnap_latch *latch = self._vitals._latch
        cdef int rc
        cdef uint64_t seq = 1      # the latch: "held" (its counter does not move)
        with nogil:
            if latch != NULL:
                # Only the writer threads' lock: readers never wait for it.
                rc = csnap_latch_lock(latch, self._vitals._timeout_ns)
            else:
                rc = csnap_write_begin(rec, self._vitals._timeout_ns, &seq)
        if rc != CSNAP_OK:
            raise StalledWriterError("Vitals: write section busy")
        # Release: pairs with the acquire of the exchange in __exit__ (the
        # exiting thread may not be this one).
        csnap_u64_store_release(&self._held, seq)
        return self

    def __exit__(self, *exc):
        if self._vitals is None:
            return False
        # Acquire/release: the winner of the exchange owns the section and
        # closes it; everyone else sees 0 and does nothing.
        cdef uint64_t seq = csnap_u64_exchange_acq_rel(&self._held, 0)
        if seq != 0:
            if self._vitals._latch != NULL:
                csnap_latch_unlock(self._vitals._latch)
            else:
                csnap_write_abort_unchanged(self._vitals._rec, seq)  # nothing was stored
        return False


def _restore(cls, fields, values, timeout, layout="classic"):
    """Unpickle/copy: a new record with the same schema, values and layout, version 0."""
    if not (isinstance(cls, type) and issubclass(cls, Vitals)):
        raise TypeError(f"cannot restore Vitals: {cls!r} is not a Vitals type")
    check_layout(layout)
    # The classic layout without the keyword: a subclass's __init__ need not take it.
    cdef Vitals new = (cls(fields, timeout=timeout) if layout == "classic"
                       else cls(fields, timeout=timeout, layout=layout))
    new._ready()
    values = tuple(values)
    if len(values) != new._n:
        raise ValueError(f"cannot restore Vitals: {new._n} fields but {len(values)} values")
    cdef uint64_t bits
    cdef uint32_t k
    # Nobody else can see `new` yet: store straight into the slots (validated
    # and clamped like any write) and keep the counter at 0.
    for k in range(new._n):
        new._convert(k, values[k], False, &bits)
        new._init_slot(k, bits)
    # The counter stays 0, so every memo taken so far (a subclass __init__
    # may have read, in any thread) would still validate and show the
    # defaults.  A fresh uid invalidates the per-thread memos (their uid no
    # longer matches); the shared cell (GIL builds) is replaced outright.
    csnap_u64_store_relaxed(&new._uid, csnap_next_uid())
    csnap_cell_store(new._memo_box, new._read_memo())
    return new
