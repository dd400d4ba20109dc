# The C seqlock, declared for Cython.  Everything here is a `static inline`
# function of csnap_seqlock.h, so a module that cimports it gets the calls
# inlined: no indirection, no GIL.  The record is opaque to Cython on purpose -
# its `_Atomic` members must only be touched through these functions.

from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t

cdef extern from "csnap_seqlock.h" nogil:
    enum:
        CSNAP_CACHE_LINE
        CSNAP_OK
        CSNAP_BUSY
        CSNAP_TIMEOUT
        CSNAP_F64
        CSNAP_I64

    ctypedef struct csnap_record:
        pass

    ctypedef struct csnap_slot_info:
        int32_t kind
        double fmin, fmax
        int64_t imin, imax

    ctypedef struct csnap_read_stats:
        uint64_t retries
        uint64_t busy

    # allocation (before the record is shared)
    csnap_record *csnap_record_alloc(uint32_t nslots)
    void csnap_record_free(csnap_record *r)
    csnap_slot_info *csnap_info(csnap_record *r)
    size_t csnap_record_size(uint32_t nslots)

    # value <-> slot bits
    uint64_t csnap_f64_bits(double v)
    double csnap_bits_f64(uint64_t bits)
    uint64_t csnap_i64_bits(int64_t v)
    int64_t csnap_bits_i64(uint64_t bits)

    # readers
    uint64_t csnap_read_begin(csnap_record *r)
    uint64_t csnap_load_bits(csnap_record *r, uint32_t i)
    double csnap_load_f64(csnap_record *r, uint32_t i)
    int64_t csnap_load_i64(csnap_record *r, uint32_t i)
    bint csnap_read_retry(csnap_record *r, uint64_t start)
    bint csnap_read_try(csnap_record *r, uint64_t *out, uint64_t *seq_out)
    int csnap_read(csnap_record *r, uint64_t *out, uint64_t *seq_out, csnap_read_stats *stats)
    int csnap_read_locked(csnap_record *r, uint64_t *out, uint64_t *seq_out, int64_t timeout_ns)
    uint64_t csnap_version(csnap_record *r)

    # writers
    bint csnap_write_try_begin(csnap_record *r, uint64_t *seq_out)
    int csnap_write_begin(csnap_record *r, int64_t timeout_ns, uint64_t *seq_out)
    void csnap_store_bits(csnap_record *r, uint32_t i, uint64_t bits)
    # writer-only: inside the caller's own open section (csnap_seqlock.h)
    uint64_t csnap_write_peek_bits(csnap_record *r, uint32_t i)
    void csnap_store_f64(csnap_record *r, uint32_t i, double v)
    void csnap_store_i64(csnap_record *r, uint32_t i, int64_t v)
    void csnap_write_end(csnap_record *r, uint64_t seq_odd)
    # only for a section in which nothing was stored
    void csnap_write_abort_unchanged(csnap_record *r, uint64_t seq_odd)

    # clamping
    double csnap_clamp_f64(const csnap_slot_info *info, double v)
    int64_t csnap_clamp_i64(const csnap_slot_info *info, int64_t v)
    int64_t csnap_add_i64(const csnap_slot_info *info, int64_t current, int64_t delta)

    # the latch form (two copies; readers never wait; may live in shared memory)
    ctypedef struct csnap_latch:
        uint32_t nslots
        uint32_t stride
        uint32_t ninfo
    uint32_t csnap_latch_stride(uint32_t nslots)
    size_t csnap_latch_size(uint32_t nslots, uint32_t ninfo)
    csnap_slot_info *csnap_latch_info(csnap_latch *l)
    void csnap_latch_init(csnap_latch *l, uint32_t nslots, uint32_t ninfo)
    csnap_latch *csnap_latch_alloc(uint32_t nslots)     # an in-process latch
    void csnap_latch_free(csnap_latch *l)
    int64_t csnap_latch_writer_pid(csnap_latch *l)
    void csnap_latch_set_writer_pid(csnap_latch *l, int64_t pid)
    # latch readers
    uint64_t csnap_latch_read_begin(csnap_latch *l)
    uint64_t csnap_latch_load_bits(csnap_latch *l, uint64_t seq, uint32_t i)
    double csnap_latch_load_f64(csnap_latch *l, uint64_t seq, uint32_t i)
    int64_t csnap_latch_load_i64(csnap_latch *l, uint64_t seq, uint32_t i)
    bint csnap_latch_read_retry(csnap_latch *l, uint64_t start)
    int csnap_latch_read(csnap_latch *l, uint32_t n, uint64_t *out, uint64_t *seq_out,
                         csnap_read_stats *stats)
    void csnap_latch_load_bytes(csnap_latch *l, uint64_t seq, uint32_t first,
                                unsigned char *dst, size_t len)
    uint64_t csnap_latch_version(csnap_latch *l)
    int csnap_latch_wait(csnap_latch *l, uint64_t seen, int64_t timeout_ns)
    # in-process readers only: the writer threads' lock as a fallback
    int csnap_latch_read_locked(csnap_latch *l, uint32_t n, uint64_t *out, uint64_t *seq_out,
                                int64_t timeout_ns)
    # latch writer: only the holder of the writer role, inside csnap_latch_lock()
    bint csnap_latch_try_lock(csnap_latch *l)
    int csnap_latch_lock(csnap_latch *l, int64_t timeout_ns)
    void csnap_latch_unlock(csnap_latch *l)
    uint64_t csnap_latch_writer_seq(csnap_latch *l)
    uint64_t csnap_latch_peek_bits(csnap_latch *l, uint32_t i)
    void csnap_latch_store_bits(csnap_latch *l, uint32_t c, uint32_t i, uint64_t bits)
    void csnap_latch_store_bytes(csnap_latch *l, uint32_t c, uint32_t first,
                                 const unsigned char *src, size_t len)
    uint64_t csnap_latch_switch(csnap_latch *l, uint64_t seq_now)
    void csnap_latch_notify(csnap_latch *l, uint64_t seq)
    void csnap_latch_write(csnap_latch *l, uint32_t n, const uint32_t *idx, const uint64_t *bits)
    uint64_t csnap_latch_write_quiet(csnap_latch *l, uint32_t n, const uint32_t *idx,
                                     const uint64_t *bits)
    uint64_t csnap_latch_recover(csnap_latch *l)

    # helpers
    int64_t csnap_monotonic_ns()
    void csnap_yield()
    void csnap_cpu_relax()
    void csnap_sleep_ns(int64_t ns)
