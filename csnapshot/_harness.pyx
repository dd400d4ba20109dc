# cython: language_level=3, freethreading_compatible=True, boundscheck=False, wraparound=False
"""Native stress harness: nogil reader loops against a writer that keeps an invariant.

The writer stores ``k * (i + 1)`` into slot ``i`` for k = 1, 2, 3, ...; a copy
is whole exactly when every slot agrees on the same k, and k never decreases
for one reader.  Readers run the header's bounded read, fall back to the
locked read when it reports CSNAP_BUSY, and count everything they see.  The
public wrapper is `csnapshot.testing.stress`.
"""

from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport int64_t, uint32_t, uint64_t
from libc.string cimport memset

from csnapshot._seqlock cimport *
from csnapshot._vitals cimport Vitals, vitals_record

import threading


cdef struct reader_counts:
    uint64_t reads
    uint64_t retries
    uint64_t fallbacks
    uint64_t torn
    uint64_t changes      # reads whose counter differed from the previous read's
    uint64_t timeouts     # locked reads that gave up (stalled writer)


cdef inline bint whole(uint64_t *buf, uint32_t n, double *k_out) noexcept nogil:
    cdef double k = csnap_bits_f64(buf[0])
    cdef uint32_t i
    for i in range(1, n):
        if csnap_bits_f64(buf[i]) != k * (i + 1):
            return False
    k_out[0] = k
    return True


cdef void reader_loop(csnap_record *rec, uint32_t n, int64_t deadline_ns,
                      int64_t timeout_ns, uint64_t *buf, reader_counts *out) noexcept nogil:
    cdef csnap_read_stats stats
    cdef uint64_t seq = 0, last_seq = 0
    cdef double k = 0.0, last_k = 0.0
    cdef int rc
    memset(&stats, 0, sizeof(stats))
    while True:
        # The clock is read every 256 reads: cheap next to the reads themselves.
        if (out.reads & 255) == 0 and csnap_monotonic_ns() >= deadline_ns:
            break
        rc = csnap_read(rec, buf, &seq, &stats)
        if rc == CSNAP_BUSY:
            out.fallbacks += 1
            rc = csnap_read_locked(rec, buf, &seq, timeout_ns)
            if rc != CSNAP_OK:
                out.timeouts += 1
                continue
        out.reads += 1
        if not whole(buf, n, &k) or k < last_k:
            out.torn += 1
        else:
            last_k = k
        if seq != last_seq:
            out.changes += 1
            last_seq = seq
    out.retries = stats.retries


cdef uint64_t writer_loop(csnap_record *rec, uint32_t n, int64_t deadline_ns,
                          int64_t period_ns) noexcept nogil:
    # Flat out when period_ns == 0, else one write per period (spin-paced).
    # k is read back inside the section, so several writers together still
    # advance it by exactly one per write: a lost or interleaved write shows
    # up as a torn read or as final k != total writes.
    cdef uint64_t writes = 0, seq
    cdef double k
    cdef uint32_t i
    cdef int64_t now, next_at = csnap_monotonic_ns()
    while True:
        now = csnap_monotonic_ns() if (period_ns or (writes & 255) == 0) else 0
        if now >= deadline_ns:
            break
        if period_ns:
            if now < next_at:
                csnap_cpu_relax()
                continue
            next_at += period_ns
        if csnap_write_begin(rec, -1, &seq) != CSNAP_OK:
            continue
        k = csnap_bits_f64(csnap_peek_bits(rec, 0)) + 1.0
        for i in range(n):
            csnap_store_bits(rec, i, csnap_f64_bits(k * (i + 1)))
        csnap_write_end(rec, seq)
        writes += 1
    return writes


def _run_reader(Vitals vitals, Py_ssize_t slot, int64_t deadline_ns, int64_t timeout_ns,
                _Counts counts):
    cdef csnap_record *rec = vitals_record(vitals)
    cdef uint32_t n = <uint32_t>len(vitals)
    cdef uint64_t *buf = <uint64_t *>PyMem_Malloc(n * sizeof(uint64_t))
    if buf == NULL:
        raise MemoryError()
    try:
        with nogil:
            reader_loop(rec, n, deadline_ns, timeout_ns, buf, &counts.c[slot])
    finally:
        PyMem_Free(buf)


def _run_native_writer(Vitals vitals, int64_t deadline_ns, int64_t period_ns, list out):
    cdef csnap_record *rec = vitals_record(vitals)
    cdef uint32_t n = <uint32_t>len(vitals)
    cdef uint64_t writes
    with nogil:
        writes = writer_loop(rec, n, deadline_ns, period_ns)
    out.append(writes)


cdef class _Counts:
    cdef reader_counts *c
    cdef Py_ssize_t n

    def __cinit__(self, Py_ssize_t n):
        self.c = <reader_counts *>PyMem_Malloc(max(n, 1) * sizeof(reader_counts))
        if self.c == NULL:
            raise MemoryError()
        memset(self.c, 0, max(n, 1) * sizeof(reader_counts))
        self.n = n

    def __dealloc__(self):
        PyMem_Free(self.c)

    def totals(self):
        cdef Py_ssize_t i
        cdef dict r
        t = dict(reads=0, retries=0, fallbacks=0, torn=0, changes=0, timeouts=0)
        per_reader = []
        for i in range(self.n):
            r = self.c[i]
            per_reader.append(r["reads"])
            for key in t:
                t[key] += r[key]
        t["per_reader"] = per_reader
        return t


def run(Vitals vitals, int readers, double seconds, str writer, int writers,
        double write_rate, double read_timeout):
    """Run the stress; see csnapshot.testing.stress for the meaning of each argument."""
    cdef int64_t now = csnap_monotonic_ns()
    cdef int64_t deadline = now + <int64_t>(seconds * 1e9)
    cdef int64_t period = <int64_t>(1e9 / write_rate) if write_rate > 0 else 0
    cdef int64_t timeout_ns = <int64_t>(read_timeout * 1e9)
    counts = _Counts(readers)
    writes = []
    threads = [threading.Thread(target=_run_reader, name=f"csnapshot-reader-{i}",
                                args=(vitals, i, deadline, timeout_ns, counts))
               for i in range(readers)]
    if writer == "native":
        threads += [threading.Thread(target=_run_native_writer, name=f"csnapshot-writer-{i}",
                                     args=(vitals, deadline, period, writes))
                    for i in range(writers)]
    for t in threads:
        t.start()
    if writer == "python":
        writes.append(_python_writer(vitals, deadline, period))
    for t in threads:
        t.join()
    return counts.totals(), writes


def _python_writer(Vitals vitals, int64_t deadline_ns, int64_t period_ns):
    # The calling Python thread writes through the public API: one
    # apply_delta adds (i + 1) to slot i, i.e. advances k by exactly one.
    step = {name: float(i + 1) for i, name in enumerate(vitals)}
    cdef uint64_t writes = 0
    cdef int64_t next_at = csnap_monotonic_ns()
    cdef int64_t now
    while True:
        now = csnap_monotonic_ns()
        if now >= deadline_ns:
            break
        if period_ns:
            if now < next_at:
                continue
            next_at += period_ns
        vitals.apply_delta(step)
        writes += 1
    return writes
