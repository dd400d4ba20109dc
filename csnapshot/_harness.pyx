# cython: language_level=3, freethreading_compatible=True, boundscheck=False, wraparound=False
"""Native stress harness: nogil reader loops against a writer that keeps an invariant.

The writer stores ``k * (i + 1)`` into slot ``i`` for k = 1, 2, 3, ...; a copy
is whole exactly when every slot agrees on the same k, and k never decreases
for one reader.  Readers run the header's bounded read, fall back to the
locked read when it reports CSNAP_BUSY, and count everything they see.  The
public wrapper is `csnapshot.testing.stress`.

For comparison (``sync="mutex"`` / ``"rwlock"``) the same reader and writer
loops run against a plain ``uint64_t[n]`` copy of the data guarded by a
``pthread_mutex_t`` or a ``pthread_rwlock_t`` (glibc defaults; readers take the
read lock): same invariant, same counters, retries and fallbacks always 0.

Why those lock baselines live in the installed library rather than in
benchmarks/: `python -m benchmarks` compares the seqlock with them, and the
comparison is only fair when both run the very same nogil C loops, compiled
the same way, against the same data layout -- a Python-level lock (or a second
extension module built only for the benchmarks) would measure something else.
They are private (this module is not part of the public API) and cost nothing
unless ``sync="mutex"`` or ``"rwlock"`` is asked for.

The C declarations (pthread locks, the run's start gate and stop rule) are in
_harness.pxd; the gate and stop rule themselves in csnap_harness.h.
"""

cimport cython
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport INT64_MAX, int64_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset

from csnapshot._seqlock cimport *
from csnapshot._vitals cimport Vitals, vitals_latch, vitals_record

import threading


cdef inline bint reader_should_stop(const harness_stop *s, uint64_t reads) noexcept nogil:
    cdef int64_t now = csnap_monotonic_ns()
    return now >= s.hard_deadline_ns or (now >= s.deadline_ns and reads >= s.min_reads)


cdef inline bint writer_should_stop(harness_stop *s, int64_t now) noexcept nogil:
    return now >= s.hard_deadline_ns or (now >= s.deadline_ns and not harness_readers_running(s))


cdef enum:
    WRITER_STOP = 0
    WRITER_WAIT = 1
    WRITER_WRITE = 2


cdef struct writer_pace:
    int64_t period_ns     # 0: flat out
    int64_t next_at       # when the next paced write is due
    uint64_t writes


cdef inline writer_pace writer_start(harness_stop *stop, int64_t period_ns) noexcept nogil:
    # After the gate, so the first paced write is due when the run starts.
    cdef writer_pace pace
    harness_gate(stop)
    pace.period_ns = period_ns
    pace.next_at = csnap_monotonic_ns()
    pace.writes = 0
    return pace


cdef inline int writer_turn(harness_stop *stop, writer_pace *pace) noexcept nogil:
    # Every writer's loop asks this before each write.  A flat-out writer
    # reads the clock every 256 writes only (now = 0 is never past a deadline).
    cdef int64_t now = (csnap_monotonic_ns()
                        if (pace.period_ns or (pace.writes & 255) == 0) else 0)
    if writer_should_stop(stop, now):
        return WRITER_STOP
    if pace.period_ns:
        if now < pace.next_at:
            csnap_cpu_relax()
            return WRITER_WAIT
        pace.next_at = harness_add_ns(pace.next_at, pace.period_ns)
    return WRITER_WRITE


cdef enum:
    SYNC_SEQLOCK = 0
    SYNC_MUTEX = 1
    SYNC_RWLOCK = 2

_SYNC_MODES = {"seqlock": SYNC_SEQLOCK, "mutex": SYNC_MUTEX, "rwlock": SYNC_RWLOCK}


# What a user would write instead of a seqlock: the lock next to the data it
# guards, in one cache-line aligned block.  `version` counts writes (so readers
# count the changes they see, like the seqlock's counter); `data` points just
# past the header, into the same allocation.
cdef struct locked_block:
    pthread_mutex_t mutex
    pthread_rwlock_t rwlock
    uint64_t version
    uint64_t *data


cdef struct reader_counts:
    uint64_t reads
    uint64_t retries
    uint64_t fallbacks
    uint64_t torn
    uint64_t changes      # reads whose counter differed from the previous read's
    uint64_t timeouts     # locked reads that gave up (stalled writer)
    uint64_t _pad[2]      # one cache line per reader: no false sharing between readers


cdef inline bint whole(uint64_t *buf, uint32_t n, double *k_out) noexcept nogil:
    cdef double k = csnap_bits_f64(buf[0])
    cdef uint32_t i
    for i in range(1, n):
        if csnap_bits_f64(buf[i]) != k * (i + 1):
            return False
    k_out[0] = k
    return True


cdef inline void count_copy(uint64_t *buf, uint32_t n, uint64_t seq, double *last_k,
                            uint64_t *last_seq, reader_counts *out) noexcept nogil:
    # What every reader loop records of one copy it took.
    cdef double k
    out.reads += 1
    if not whole(buf, n, &k) or k < last_k[0]:
        out.torn += 1
    else:
        last_k[0] = k
    if seq != last_seq[0]:
        out.changes += 1
        last_seq[0] = seq


cdef void reader_loop(csnap_record *rec, csnap_latch *latch, uint32_t n, harness_stop *stop,
                      int64_t timeout_ns, uint64_t *buf, reader_counts *out) noexcept nogil:
    # Reads the classic record `rec`, or the latch when `latch` is not NULL
    # (a Vitals(layout="latch")): the same counts, the same fallback to the
    # writers' lock.  The branch goes the same way on every read.
    cdef csnap_read_stats stats
    cdef uint64_t seq = 0, last_seq = 0
    cdef double last_k = 0.0
    cdef int rc
    memset(&stats, 0, sizeof(stats))
    harness_gate(stop)
    while True:
        # The clock is read every 256 reads: cheap next to the reads themselves.
        if (out.reads & 255) == 0 and reader_should_stop(stop, out.reads):
            break
        if latch != NULL:
            rc = csnap_latch_read(latch, n, buf, &seq, &stats)
        else:
            rc = csnap_read(rec, buf, &seq, &stats)
        if rc == CSNAP_BUSY:
            out.fallbacks += 1
            if latch != NULL:
                rc = csnap_latch_read_locked(latch, n, buf, &seq, timeout_ns)
            else:
                rc = csnap_read_locked(rec, buf, &seq, timeout_ns)
            if rc != CSNAP_OK:
                out.timeouts += 1
                continue
        count_copy(buf, n, seq, &last_k, &last_seq, out)
    out.retries = stats.retries


cdef uint64_t writer_loop(csnap_record *rec, uint32_t n, harness_stop *stop,
                          int64_t period_ns) noexcept nogil:
    # Flat out when period_ns == 0, else one write per period (spin-paced).
    # k is read back inside the section, so several writers together still
    # advance it by exactly one per write: a lost or interleaved write shows
    # up as a torn read or as final k != total writes.
    cdef uint64_t seq
    cdef double k
    cdef uint32_t i
    cdef int turn
    cdef writer_pace pace = writer_start(stop, period_ns)
    while True:
        turn = writer_turn(stop, &pace)
        if turn == WRITER_STOP:
            break
        if turn == WRITER_WAIT or csnap_write_begin(rec, -1, &seq) != CSNAP_OK:
            continue
        k = csnap_bits_f64(csnap_write_peek_bits(rec, 0)) + 1.0
        for i in range(n):
            csnap_store_bits(rec, i, csnap_f64_bits(k * (i + 1)))
        csnap_write_end(rec, seq)
        pace.writes += 1
    return pace.writes


cdef inline void latch_write_next(csnap_latch *l, uint32_t n, const uint32_t *idx,
                                  uint64_t *bits, bint wake) noexcept nogil:
    # Holding the latch's lock: the next write of the invariant (k read back,
    # slot i <- (k + 1) * (i + 1)), then unlock.  `wake`: a shared latch's
    # waiters (csnap_latch_write); an in-process one has none (_quiet).
    cdef double k = csnap_bits_f64(csnap_latch_peek_bits(l, 0)) + 1.0
    cdef uint32_t i
    for i in range(n):
        bits[i] = csnap_f64_bits(k * (i + 1))
    if wake:
        csnap_latch_write(l, n, idx, bits)
    else:
        csnap_latch_write_quiet(l, n, idx, bits)
    csnap_latch_unlock(l)


cdef uint64_t latch_writer_loop(csnap_latch *l, uint32_t n, harness_stop *stop,
                                int64_t period_ns) noexcept nogil:
    # writer_loop on a Vitals(layout="latch"), as Vitals writes it (the
    # writer threads' lock, both halves, no wake-up); n <= 32 (checked by run).
    cdef uint32_t idx[32]
    cdef uint64_t bits[32]
    cdef uint32_t i
    cdef int turn
    cdef writer_pace pace = writer_start(stop, period_ns)
    for i in range(n):
        idx[i] = i
    while True:
        turn = writer_turn(stop, &pace)
        if turn == WRITER_STOP:
            break
        if turn == WRITER_WAIT or csnap_latch_lock(l, -1) != CSNAP_OK:
            continue
        latch_write_next(l, n, idx, bits, False)
        pace.writes += 1
    return pace.writes


cdef inline void lock_read(locked_block *b, int sync) noexcept nogil:
    if sync == SYNC_MUTEX:
        pthread_mutex_lock(&b.mutex)
    else:
        pthread_rwlock_rdlock(&b.rwlock)


cdef inline void lock_write(locked_block *b, int sync) noexcept nogil:
    if sync == SYNC_MUTEX:
        pthread_mutex_lock(&b.mutex)
    else:
        pthread_rwlock_wrlock(&b.rwlock)


cdef inline void unlock(locked_block *b, int sync) noexcept nogil:
    if sync == SYNC_MUTEX:
        pthread_mutex_unlock(&b.mutex)
    else:
        pthread_rwlock_unlock(&b.rwlock)


cdef void locked_reader_loop(locked_block *b, int sync, uint32_t n, harness_stop *stop,
                             uint64_t *buf, reader_counts *out) noexcept nogil:
    # reader_loop with the lock instead of the seqlock: copy under the lock,
    # check outside it.  retries, fallbacks and timeouts stay 0.
    cdef uint64_t seq = 0, last_seq = 0
    cdef double last_k = 0.0
    harness_gate(stop)
    while True:
        if (out.reads & 255) == 0 and reader_should_stop(stop, out.reads):
            break
        lock_read(b, sync)
        memcpy(buf, b.data, n * sizeof(uint64_t))
        seq = b.version
        unlock(b, sync)
        count_copy(buf, n, seq, &last_k, &last_seq, out)


cdef uint64_t locked_writer_loop(locked_block *b, int sync, uint32_t n, harness_stop *stop,
                                 int64_t period_ns) noexcept nogil:
    # writer_loop with the lock: same pacing, same read-back of k inside the
    # critical section.
    cdef double k
    cdef uint32_t i
    cdef int turn
    cdef writer_pace pace = writer_start(stop, period_ns)
    while True:
        turn = writer_turn(stop, &pace)
        if turn == WRITER_STOP:
            break
        if turn == WRITER_WAIT:
            continue
        lock_write(b, sync)
        k = csnap_bits_f64(b.data[0]) + 1.0
        for i in range(n):
            b.data[i] = csnap_f64_bits(k * (i + 1))
        b.version += 1
        unlock(b, sync)
        pace.writes += 1
    return pace.writes


cdef int64_t _ns(double seconds, str what) except? -2:
    # Seconds -> ns for the C loops, saturating: a float beyond int64 (inf, a
    # period of 1/tiny rate) must not reach a C cast (undefined behaviour).
    if not seconds >= 0:  # negative or NaN
        raise ValueError(f"{what} must be a non-negative number of seconds, got {seconds!r}")
    if seconds * 1e9 >= 9.2e18:
        return INT64_MAX
    return <int64_t>(seconds * 1e9)


@cython.auto_pickle(False)
cdef class _LockedData:
    """The mutex/rwlock-guarded copy of a record's slots (sync="mutex"/"rwlock")."""
    cdef locked_block *b
    cdef uint32_t n
    cdef int sync

    def __cinit__(self, int sync, values):
        cdef uint32_t i
        # A tuple: converting an item below runs Python code (__float__), which
        # must not be able to shrink the sequence under the unchecked index.
        values = tuple(values)
        cdef size_t header = (sizeof(locked_block) + 63) // 64 * 64
        cdef size_t size = (header + len(values) * sizeof(uint64_t) + 63) // 64 * 64
        self.n = <uint32_t>len(values)
        self.sync = sync
        self.b = <locked_block *>aligned_alloc(64, size)
        if self.b == NULL:
            raise MemoryError()
        memset(self.b, 0, size)
        self.b.data = <uint64_t *>((<char *>self.b) + header)
        pthread_mutex_init(&self.b.mutex, NULL)
        pthread_rwlock_init(&self.b.rwlock, NULL)
        for i in range(self.n):
            self.b.data[i] = csnap_f64_bits(values[i])

    def __dealloc__(self):
        if self.b != NULL:
            pthread_mutex_destroy(&self.b.mutex)
            pthread_rwlock_destroy(&self.b.rwlock)
            free(self.b)

    def first(self):
        """Slot 0 as a float (k), read under the lock."""
        cdef double k
        with nogil:
            lock_read(self.b, self.sync)
            k = csnap_bits_f64(self.b.data[0])
            unlock(self.b, self.sync)
        return k


@cython.auto_pickle(False)
cdef class _Stop:
    """The run's harness_stop, shared by all its threads (see the top of this file)."""
    cdef harness_stop s

    def __cinit__(self, uint32_t threads, uint32_t readers, double seconds, double max_seconds,
                  uint64_t min_reads):
        harness_stop_init(&self.s, threads, readers, _ns(seconds, "seconds"),
                          _ns(max(seconds, max_seconds), "max_seconds"), min_reads)

    def never_ran(self, bint reader):
        """Account for a thread that failed before its loop: nobody waits for it.

        Never waits at the gate itself: run() calls it once per thread that
        did not start, on one thread, then re-raises.
        """
        with nogil:
            harness_leave(&self.s)
            if reader:
                harness_reader_ended(&self.s)

    def elapsed(self):
        """Seconds from the gate's opening to now."""
        return (csnap_monotonic_ns() - self.s.opened_ns) / 1e9


cdef int _check_slot(Py_ssize_t slot, _Counts counts) except -1:
    if not 0 <= slot < counts.n:
        raise IndexError(f"reader slot {slot} is outside 0..{counts.n - 1}")
    return 0


def _run_locked_reader(_LockedData d, Py_ssize_t slot, _Stop stop, _Counts counts):
    _check_slot(slot, counts)
    cdef uint64_t *buf = <uint64_t *>PyMem_Malloc(d.n * sizeof(uint64_t))
    if buf == NULL:
        stop.never_ran(reader=True)
        raise MemoryError()
    with nogil:
        locked_reader_loop(d.b, d.sync, d.n, &stop.s, buf, &counts.c[slot])
        harness_reader_ended(&stop.s)
    PyMem_Free(buf)


def _run_locked_writer(_LockedData d, _Stop stop, int64_t period_ns, list out):
    cdef uint64_t writes
    with nogil:
        writes = locked_writer_loop(d.b, d.sync, d.n, &stop.s, period_ns)
    out.append(writes)


def _run_reader(Vitals vitals, Py_ssize_t slot, _Stop stop, int64_t timeout_ns,
                _Counts counts):
    _check_slot(slot, counts)
    # The record and its own slot count: never len(vitals), which a subclass
    # can override (a larger count would copy past the end of the record).
    vitals._ready()                     # raises for an uninitialised record
    cdef csnap_record *rec = vitals_record(vitals)
    cdef csnap_latch *latch = vitals_latch(vitals)
    cdef uint32_t n = vitals._n
    cdef uint64_t *buf = <uint64_t *>PyMem_Malloc(n * sizeof(uint64_t))
    if buf == NULL:
        stop.never_ran(reader=True)
        raise MemoryError()
    with nogil:
        reader_loop(rec, latch, n, &stop.s, timeout_ns, buf, &counts.c[slot])
        # Still without the GIL: a Python writer (writer="python") holds it
        # in a compiled loop that only this counter can end.
        harness_reader_ended(&stop.s)
    PyMem_Free(buf)


def _run_native_writer(Vitals vitals, _Stop stop, int64_t period_ns, list out):
    vitals._ready()                             # raises for an uninitialised record
    cdef csnap_record *rec = vitals_record(vitals)
    cdef csnap_latch *latch = vitals_latch(vitals)
    cdef uint32_t n = vitals._n                 # as in _run_reader: not len(vitals)
    cdef uint64_t writes
    with nogil:
        if latch != NULL:
            writes = latch_writer_loop(latch, n, &stop.s, period_ns)
        else:
            writes = writer_loop(rec, n, &stop.s, period_ns)
    out.append(writes)


@cython.auto_pickle(False)
cdef class _Counts:
    cdef reader_counts *c
    cdef Py_ssize_t n

    def __cinit__(self, Py_ssize_t n):
        if not 0 <= n <= 1 << 16:  # the size computation below cannot overflow
            raise ValueError(f"_Counts needs 0 to {1 << 16} readers, got {n}")
        # Cache-line aligned: each reader's counters sit on a line of their own.
        cdef size_t size = (max(n, 1) * sizeof(reader_counts) + 63) // 64 * 64
        self.c = <reader_counts *>aligned_alloc(64, size)
        if self.c == NULL:
            raise MemoryError()
        memset(self.c, 0, size)
        self.n = n

    def __dealloc__(self):
        free(self.c)

    def totals(self):
        cdef Py_ssize_t i
        cdef dict r
        t = dict(reads=0, retries=0, fallbacks=0, torn=0, changes=0, timeouts=0)
        per_reader = []
        for i in range(self.n):
            r = self.c[i]
            del r["_pad"]
            per_reader.append(r["reads"])
            for key in t:
                t[key] += r[key]
        t["per_reader"] = per_reader
        return t


def run(Vitals vitals, int readers, double seconds, str writer, int writers,
        double write_rate, double read_timeout, str sync="seqlock",
        uint64_t min_reads=0, double max_seconds=0.0):
    """Run the stress; see csnapshot.testing.stress for the meaning of each argument.

    The run lasts `seconds`, then goes on until every reader has taken
    `min_reads` copies, but never past `max_seconds` (when larger than
    `seconds`).  The totals include ``elapsed``, the run's wall time in seconds.

    With ``sync="mutex"`` or ``"rwlock"`` the readers and native writers work
    on a lock-guarded copy of the record's current values instead of the
    record itself, and the totals gain ``k_after`` (slot 0 of that copy at the
    end), from which the caller counts lost writes.
    """
    if sync not in _SYNC_MODES:
        raise ValueError(f"sync must be 'seqlock', 'mutex' or 'rwlock', got {sync!r}")
    cdef int mode = _SYNC_MODES[sync]
    if not write_rate >= 0:
        raise ValueError(f"write_rate must be >= 0 writes per second, got {write_rate!r}")
    if not read_timeout > 0:
        raise ValueError(f"read_timeout must be a positive number of seconds, got {read_timeout!r}")
    vitals._ready()   # an uninitialised record raises here, before any thread starts
    if vitals_latch(vitals) != NULL and vitals._n > 32 and writer == "native":
        raise ValueError(f"a native writer of a latch record takes at most 32 fields, "
                         f"got {vitals._n}")
    cdef int64_t period = _ns(1.0 / write_rate, "1 / write_rate") if write_rate > 0 else 0
    # "Forever" as for Vitals(timeout=...): -1 for the C waits.
    cdef int64_t timeout_ns = -1 if read_timeout >= threading.TIMEOUT_MAX else _ns(read_timeout, "read_timeout")
    if mode != SYNC_SEQLOCK and writer == "python":
        raise ValueError("writer='python' writes through the Vitals API: it needs sync='seqlock'")
    native_writers = writers if writer == "native" else 0
    counts = _Counts(readers)
    stop = _Stop(readers + native_writers + (writer == "python"), readers,
                 seconds, max_seconds, min_reads)
    writes = []
    if mode != SYNC_SEQLOCK:
        data = _LockedData(mode, vitals.read_tuple())
        readers_ = [threading.Thread(target=_run_locked_reader, name=f"csnapshot-reader-{i}",
                                     args=(data, i, stop, counts))
                    for i in range(readers)]
        writers_ = [threading.Thread(target=_run_locked_writer, name=f"csnapshot-writer-{i}",
                                     args=(data, stop, period, writes))
                    for i in range(native_writers)]
    else:
        readers_ = [threading.Thread(target=_run_reader, name=f"csnapshot-reader-{i}",
                                     args=(vitals, i, stop, timeout_ns, counts))
                    for i in range(readers)]
        writers_ = [threading.Thread(target=_run_native_writer, name=f"csnapshot-writer-{i}",
                                     args=(vitals, stop, period, writes))
                    for i in range(native_writers)]
    started = []
    try:
        for t in readers_ + writers_:
            t.start()
            started.append(t)
    except BaseException:
        # The started threads wait at the gate for the rest: let them through
        # (readers first, so the writers stop with them).
        for t in readers_ + writers_:
            if t not in started:
                stop.never_ran(reader=t in readers_)
        if writer == "python":
            stop.never_ran(reader=False)
        for t in started:
            t.join()
        raise
    if writer == "python":
        writes.append(_python_writer(vitals, stop, period))
    for t in started:
        t.join()
    totals = counts.totals()
    totals["elapsed"] = stop.elapsed()
    if mode != SYNC_SEQLOCK:
        totals["k_after"] = data.first()
    return totals, writes


def _python_writer(Vitals vitals, _Stop stop, int64_t period_ns):
    # The calling Python thread writes through the public API: one
    # apply_delta adds (i + 1) to slot i, i.e. advances k by exactly one.
    step = {name: float(i + 1) for i, name in enumerate(vitals)}
    cdef int turn
    cdef writer_pace pace
    with nogil:  # the others may need the GIL to get to the gate
        pace = writer_start(&stop.s, period_ns)
    while True:
        turn = writer_turn(&stop.s, &pace)
        if turn == WRITER_STOP:
            break
        if turn == WRITER_WAIT:
            continue
        vitals.apply_delta(step)
        pace.writes += 1
    return pace.writes


# ---- the latch record of a SharedVitals (csnapshot._shared) -------------------
#
# Same invariant as above (slot i holds k * (i + 1)), on the latch form: native
# readers and writers for the cross-process stress tests and the in-process
# ThreadSanitizer run.  A reader may live in any process that opened the
# segment; the writer must hold the writer role.

from csnapshot._shared cimport SharedVitals, shared_latch


cdef int _check_invariant_fields(SharedVitals v) except -1:
    if any(f.kind is not float or f.min is not None or f.max is not None for f in v.fields):
        raise ValueError("the latch stress needs a SharedVitals whose fields are all "
                         "unbounded floats")
    return 0


def latch_reader(SharedVitals v, uint64_t reads, uint64_t min_changes=0, double max_seconds=60.0):
    """Take `reads` native copies of `v` without the GIL; returns the counts as a dict.

    Goes on past `reads` until the copies showed `min_changes` new versions,
    but never past `max_seconds` (the result then shows too few changes).
    """
    _check_invariant_fields(v)
    cdef csnap_latch *l = shared_latch(v)
    cdef uint32_t n = <uint32_t>len(v)
    cdef uint64_t *buf = <uint64_t *>PyMem_Malloc(n * sizeof(uint64_t))
    if buf == NULL:
        raise MemoryError()
    cdef reader_counts c
    cdef csnap_read_stats stats
    cdef uint64_t seq = 0, last_seq = 0
    cdef double last_k = 0.0
    cdef int64_t hard = harness_add_ns(csnap_monotonic_ns(), _ns(max_seconds, "max_seconds"))
    memset(&c, 0, sizeof(c))
    memset(&stats, 0, sizeof(stats))
    with nogil:
        while c.reads < reads or c.changes < min_changes:
            if (c.reads & 1023) == 0 and c.reads >= reads and csnap_monotonic_ns() > hard:
                break
            if csnap_latch_read(l, n, buf, &seq, &stats) != CSNAP_OK:
                c.fallbacks += 1      # overtaken every time: try again
                continue
            count_copy(buf, n, seq, &last_k, &last_seq, &c)
    PyMem_Free(buf)
    return dict(reads=c.reads, torn=c.torn, changes=c.changes, retries=stats.retries,
                busy=stats.busy)


def latch_writer(SharedVitals v, uint64_t writes, double write_rate=0.0):
    """Make `writes` native writes to `v` (the writer's handle), flat out or paced.

    Each write reads k back and stores (k + 1) * (i + 1) into slot i.  Returns
    the writes made.
    """
    _check_invariant_fields(v)
    if not v.is_writer:
        raise PermissionError("latch_writer() needs the writer's handle")
    cdef csnap_latch *l = shared_latch(v)
    cdef uint32_t n = <uint32_t>len(v)
    if n > 32:
        raise ValueError("latch_writer() takes at most 32 fields")
    cdef uint32_t idx[32]
    cdef uint64_t bits[32]
    cdef uint32_t i
    cdef uint64_t done = 0
    cdef int64_t period = _ns(1.0 / write_rate, "1 / write_rate") if write_rate > 0 else 0
    cdef int64_t next_at
    for i in range(n):
        idx[i] = i
    with nogil:
        next_at = csnap_monotonic_ns()
        while done < writes:
            if period:
                while csnap_monotonic_ns() < next_at:
                    csnap_cpu_relax()
                next_at += period
            if csnap_latch_lock(l, -1) != CSNAP_OK:
                continue
            latch_write_next(l, n, idx, bits, True)
            done += 1
    return done
