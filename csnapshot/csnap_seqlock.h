/*
 * csnap_seqlock.h - seqlocks around records of 64-bit numeric slots.
 *
 * One writer stores a handful of numbers (a "record"); any number of readers
 * copy all of them as one consistent set, without a lock and without the
 * Python GIL.  Readers never make the writer wait.  Two forms:
 *
 *  - csnap_record: the classic seqlock (one copy).  A reader that overlaps a
 *    write retries; a reader that finds a write open spins a bounded number of
 *    times, then falls back (csnap_read_locked()).
 *  - csnap_latch: the latch form (two copies, as Linux seqcount_latch).  The
 *    writer fills one copy while readers read the other, so readers never wait
 *    for an open write - not even for a writer that died inside one.  Its
 *    memory may be a MAP_SHARED mapping used by several processes (lock-free
 *    C11 atomics are address-free) or the process's own (csnap_latch_alloc()).
 *
 * Reader of a csnap_record:
 *
 *     do {
 *         seq = csnap_read_begin(rec);
 *         energy = csnap_load_f64(rec, 0);  ticks = csnap_load_i64(rec, 1);
 *     } while (csnap_read_retry(rec, seq));
 *
 * Reader of a csnap_latch (same shape; the copy is chosen by `seq`):
 *
 *     do {
 *         seq = csnap_latch_read_begin(l);
 *         energy = csnap_latch_load_f64(l, seq, 0);
 *     } while (csnap_latch_read_retry(l, seq));
 *
 * Rules:
 *  - Numbers only: a slot holds an int64 or the bit pattern of a double, never
 *    a pointer (a reader may copy a value that is being overwritten and learn
 *    only afterwards that the copy was invalid).
 *  - Nothing may fail inside a write section: validate and convert first.
 *  - Every access to shared state is a C11 atomic with an explicit order; each
 *    one names the access it pairs with.  Why each order is enough under the
 *    C11 model (not only on x86): docs/design.md, "Memory orderings" and
 *    "The latch form".
 *
 * Layout: a csnap_record is one allocation made by csnap_record_alloc(),
 * aligned and padded to whole cache lines: counter and slots first, the
 * per-slot bounds (csnap_slot_info, written before the record is shared, read
 * only afterwards) on lines of their own.  A csnap_latch is laid out by its
 * owner (csnap_latch_size(), csnap_latch_init()); see docs/shared-memory.md.
 */
#ifndef CSNAP_SEQLOCK_H
#define CSNAP_SEQLOCK_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <time.h>

#if defined(_WIN32)
#  define WIN32_LEAN_AND_MEAN
#  include <windows.h>
#  include <malloc.h>
#else
#  include <sched.h>
#endif
#if defined(__linux__)
#  include <linux/futex.h>
#  include <sys/syscall.h>
#  include <unistd.h>
#  include <limits.h>
#endif

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2,
               "csnap_seqlock.h needs lock-free 64-bit atomics");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2,
               "csnap_seqlock.h needs lock-free 32-bit atomics");
_Static_assert(sizeof(double) == sizeof(uint64_t), "double must be 64 bits");

#define CSNAP_CACHE_LINE 64

/* Status codes. */
#define CSNAP_OK 0
#define CSNAP_BUSY 1     /* csnap_read(): every bounded attempt overlapped a write */
#define CSNAP_TIMEOUT 2  /* the writers' lock stayed taken for the whole timeout */

/* Slot kinds. */
#define CSNAP_F64 0
#define CSNAP_I64 1

/* How hard csnap_read() tries before reporting CSNAP_BUSY: a tight spin
 * covers a write section in progress on another core (tens of ns); the
 * yields cover a writer that shares our core.  Beyond that the writer is
 * stalled or writing flat out, and the caller should fall back. */
#ifndef CSNAP_READ_SPINS
#define CSNAP_READ_SPINS 64
#endif
#ifndef CSNAP_READ_YIELDS
#define CSNAP_READ_YIELDS 16
#endif

typedef struct csnap_slot_info {
    int32_t kind;          /* CSNAP_F64 or CSNAP_I64 */
    int32_t reserved;
    double fmin, fmax;     /* bounds of a CSNAP_F64 slot */
    int64_t imin, imax;    /* bounds of a CSNAP_I64 slot */
} csnap_slot_info;

typedef struct csnap_record {
    /* even = stable, odd = a write section is open (and holds the writers' lock) */
    _Alignas(CSNAP_CACHE_LINE) _Atomic uint64_t seq;
    uint32_t nslots;                 /* constant after csnap_record_alloc() */
    uint32_t reserved;
    _Atomic uint64_t slots[];        /* nslots values; see csnap_slot_info for bounds */
} csnap_record;

/* Per-read counters, for the stress harness and benchmarks (optional). */
typedef struct csnap_read_stats {
    uint64_t retries;     /* attempts discarded because a write overlapped */
    uint64_t busy;        /* csnap_read() calls that gave up (CSNAP_BUSY) */
} csnap_read_stats;

/* ---- portability shims ------------------------------------------------ */

static inline void csnap_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static inline void csnap_yield(void)
{
#if defined(_WIN32)
    SwitchToThread();
#else
    sched_yield();
#endif
}

static inline int64_t csnap_monotonic_ns(void)
{
#if defined(_WIN32)
    static LARGE_INTEGER freq;
    LARGE_INTEGER now;
    if (freq.QuadPart == 0) QueryPerformanceFrequency(&freq);
    QueryPerformanceCounter(&now);
    return (int64_t)((double)now.QuadPart * 1e9 / (double)freq.QuadPart);
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
#endif
}

/* Sleep for about `ns` nanoseconds (used only by waits that already spun). */
static inline void csnap_sleep_ns(int64_t ns)
{
#if defined(_WIN32)
    Sleep((DWORD)(ns / 1000000 > 0 ? ns / 1000000 : 0));
#else
    struct timespec ts = { (time_t)(ns / 1000000000), (long)(ns % 1000000000) };
    nanosleep(&ts, NULL);
#endif
}

/* ---- value <-> slot bits ---------------------------------------------- */

static inline uint64_t csnap_f64_bits(double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    return bits;
}

static inline double csnap_bits_f64(uint64_t bits)
{
    double v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

static inline uint64_t csnap_i64_bits(int64_t v) { return (uint64_t)v; }
static inline int64_t csnap_bits_i64(uint64_t bits) { return (int64_t)bits; }

/* ---- allocation ------------------------------------------------------- */

static inline size_t csnap_round_line(size_t n)
{
    return (n + CSNAP_CACHE_LINE - 1) / CSNAP_CACHE_LINE * CSNAP_CACHE_LINE;
}

/* `size` bytes (a whole number of lines) aligned to a cache line; NULL when
 * out of memory.  Free with csnap_line_free(). */
static inline void *csnap_line_alloc(size_t size)
{
#if defined(_WIN32)
    return _aligned_malloc(size, CSNAP_CACHE_LINE);
#else
    return aligned_alloc(CSNAP_CACHE_LINE, size);
#endif
}

static inline void csnap_line_free(void *p)
{
#if defined(_WIN32)
    _aligned_free(p);
#else
    free(p);
#endif
}

static inline size_t csnap_info_offset(uint32_t nslots)
{
    return csnap_round_line(offsetof(csnap_record, slots) + (size_t)nslots * sizeof(uint64_t));
}

static inline size_t csnap_record_size(uint32_t nslots)
{
    return csnap_info_offset(nslots) + csnap_round_line((size_t)nslots * sizeof(csnap_slot_info));
}

/* The bounds table: after the slots, on lines of its own. */
static inline csnap_slot_info *csnap_info(csnap_record *r)
{
    return (csnap_slot_info *)((char *)r + csnap_info_offset(r->nslots));
}

/* Every slot starts as 0 / 0.0 with unbounded limits; set kinds, bounds and
 * initial values before the record is shared with another thread. */
static inline csnap_record *csnap_record_alloc(uint32_t nslots)
{
    size_t size = csnap_record_size(nslots);
    csnap_record *r = (csnap_record *)csnap_line_alloc(size);
    if (r == NULL) return NULL;
    memset((void *)r, 0, size);
    atomic_init(&r->seq, 0);
    r->nslots = nslots;
    csnap_slot_info *info = csnap_info(r);
    for (uint32_t i = 0; i < nslots; i++) {
        atomic_init(&r->slots[i], 0);
        info[i].kind = CSNAP_F64;
        info[i].fmin = -INFINITY;
        info[i].fmax = INFINITY;
        info[i].imin = INT64_MIN;
        info[i].imax = INT64_MAX;
    }
    return r;
}

static inline void csnap_record_free(csnap_record *r)
{
    csnap_line_free(r);
}

/* ---- readers ---------------------------------------------------------- */

/* Start an optimistic read.  Acquire; pairs with the release store in
 * csnap_write_end() (pairing A). */
static inline uint64_t csnap_read_begin(csnap_record *r)
{
    return atomic_load_explicit(&r->seq, memory_order_acquire);
}

/* One slot.  Acquire; pairs with the release store in csnap_store_bits()
 * (pairing B: a value of a later write makes csnap_read_retry() fail). */
static inline uint64_t csnap_load_bits(csnap_record *r, uint32_t i)
{
    return atomic_load_explicit(&r->slots[i], memory_order_acquire);
}

static inline double csnap_load_f64(csnap_record *r, uint32_t i)
{
    return csnap_bits_f64(csnap_load_bits(r, i));
}

static inline int64_t csnap_load_i64(csnap_record *r, uint32_t i)
{
    return csnap_bits_i64(csnap_load_bits(r, i));
}

/* Nonzero when the values loaded since csnap_read_begin() must be discarded.
 * Relaxed; it only has to observe the odd counter that pairing B made
 * visible (the acquire slot loads before it keep it after them). */
static inline int csnap_read_retry(csnap_record *r, uint64_t start)
{
    return (start & 1) != 0
        || atomic_load_explicit(&r->seq, memory_order_relaxed) != start;
}

/* One attempt at copying all slots; 1 on a consistent copy. */
static inline int csnap_read_try(csnap_record *r, uint64_t *out, uint64_t *seq_out)
{
    uint64_t start = csnap_read_begin(r);
    if (start & 1) return 0;
    for (uint32_t i = 0; i < r->nslots; i++) out[i] = csnap_load_bits(r, i);
    if (csnap_read_retry(r, start)) return 0;
    *seq_out = start;
    return 1;
}

/* Copy all slots consistently, bounded: CSNAP_READ_SPINS paused tries, then
 * CSNAP_READ_YIELDS yielding tries, then CSNAP_BUSY (the caller falls back).
 * `stats` may be NULL. */
static inline int csnap_read(csnap_record *r, uint64_t *out, uint64_t *seq_out,
                             csnap_read_stats *stats)
{
    for (int attempt = 0; attempt < CSNAP_READ_SPINS + CSNAP_READ_YIELDS; attempt++) {
        if (csnap_read_try(r, out, seq_out)) return CSNAP_OK;
        if (stats) stats->retries++;
        if (attempt < CSNAP_READ_SPINS) csnap_cpu_relax();
        else csnap_yield();
    }
    if (stats) stats->busy++;
    return CSNAP_BUSY;
}

/* ---- writers ---------------------------------------------------------- */

/* Try to open a write section: CAS `seq` from even to odd (the writers' lock).
 * Acquire on success; pairs with the previous writer's release in
 * csnap_write_end(), so a read-modify-write starts from its values. */
static inline int csnap_write_try_begin(csnap_record *r, uint64_t *seq_out)
{
    uint64_t s = atomic_load_explicit(&r->seq, memory_order_relaxed);
    if (s & 1) return 0;
    if (!atomic_compare_exchange_strong_explicit(&r->seq, &s, s + 1,
                                                 memory_order_acquire,
                                                 memory_order_relaxed))
        return 0;
    *seq_out = s + 1;
    return 1;
}

/* Open a write section, waiting for another writer (spin, yield, then a
 * growing sleep) up to timeout_ns (< 0: forever); CSNAP_OK or CSNAP_TIMEOUT. */
static inline int csnap_write_begin(csnap_record *r, int64_t timeout_ns, uint64_t *seq_out)
{
    if (csnap_write_try_begin(r, seq_out)) return CSNAP_OK;
    /* The deadline saturates (INT64_MAX means "about forever"). */
    int64_t now = csnap_monotonic_ns();
    int64_t deadline = (timeout_ns < 0 || timeout_ns > INT64_MAX - now) ? INT64_MAX
                                                                      : now + timeout_ns;
    int64_t pause_ns = 1000;
    for (unsigned attempt = 1;; attempt++) {
        if (attempt < 64) csnap_cpu_relax();
        else if (attempt < 128) csnap_yield();
        else {
            if (csnap_monotonic_ns() >= deadline) return CSNAP_TIMEOUT;
            csnap_sleep_ns(pause_ns);
            if (pause_ns < 1000000) pause_ns *= 2;
        }
        if (csnap_write_try_begin(r, seq_out)) return CSNAP_OK;
    }
}

/* Store one slot inside an open section.  Release; pairs with the acquire in
 * csnap_load_bits() (pairing B). */
static inline void csnap_store_bits(csnap_record *r, uint32_t i, uint64_t bits)
{
    atomic_store_explicit(&r->slots[i], bits, memory_order_release);
}

/* WRITERS ONLY, inside their own open section: the current value of a slot.
 * Relaxed (nobody else stores now); a reader using it instead of
 * csnap_load_bits() would break pairing B and accept torn copies. */
static inline uint64_t csnap_write_peek_bits(csnap_record *r, uint32_t i)
{
    return atomic_load_explicit(&r->slots[i], memory_order_relaxed);
}

/* Close the section (the next even value).  Release; pairs with the acquire in
 * csnap_read_begin() (pairing A) and in the next csnap_write_try_begin(). */
static inline void csnap_write_end(csnap_record *r, uint64_t seq_odd)
{
    atomic_store_explicit(&r->seq, seq_odd + 1, memory_order_release);
}

/* Close a section IN WHICH NOTHING WAS STORED (the counter goes back, so
 * earlier readers still validate).  Release; pairs with the next writer's
 * acquire CAS.  After any store use csnap_write_end(). */
static inline void csnap_write_abort_unchanged(csnap_record *r, uint64_t seq_odd)
{
    atomic_store_explicit(&r->seq, seq_odd - 1, memory_order_release);
}

/* Fallback read: take the writers' lock, copy, release without a bump.
 * CSNAP_TIMEOUT when a section stayed open for timeout_ns. */
static inline int csnap_read_locked(csnap_record *r, uint64_t *out, uint64_t *seq_out,
                                    int64_t timeout_ns)
{
    uint64_t s;
    if (csnap_write_begin(r, timeout_ns, &s) != CSNAP_OK) return CSNAP_TIMEOUT;
    for (uint32_t i = 0; i < r->nslots; i++) out[i] = csnap_write_peek_bits(r, i);
    csnap_write_abort_unchanged(r, s);  /* nothing was stored */
    *seq_out = s - 1;
    return CSNAP_OK;
}

/* Completed write sections.  Acquire, as csnap_read_begin(). */
static inline uint64_t csnap_version(csnap_record *r)
{
    return atomic_load_explicit(&r->seq, memory_order_acquire) >> 1;
}

/* ---- clamping (writers, before or inside a section: never fails) -------- */

static inline double csnap_clamp_f64(const csnap_slot_info *info, double v)
{
    if (v < info->fmin) return info->fmin;
    if (v > info->fmax) return info->fmax;
    return v;
}

static inline int64_t csnap_clamp_i64(const csnap_slot_info *info, int64_t v)
{
    if (v < info->imin) return info->imin;
    if (v > info->imax) return info->imax;
    return v;
}

/* current + delta, saturating at the int64 range, then clamped. */
static inline int64_t csnap_add_i64(const csnap_slot_info *info, int64_t current, int64_t delta)
{
    int64_t sum;
    if (__builtin_add_overflow(current, delta, &sum)) sum = delta > 0 ? INT64_MAX : INT64_MIN;
    return csnap_clamp_i64(info, sum);
}

/* Typed stores for an open section: clamp to the slot's bounds, store. */
static inline void csnap_store_f64(csnap_record *r, uint32_t i, double v)
{
    csnap_store_bits(r, i, csnap_f64_bits(csnap_clamp_f64(&csnap_info(r)[i], v)));
}

static inline void csnap_store_i64(csnap_record *r, uint32_t i, int64_t v)
{
    csnap_store_bits(r, i, csnap_i64_bits(csnap_clamp_i64(&csnap_info(r)[i], v)));
}

/* ======================================================================== */
/* ---- the latch form: two copies, readers never wait -------------------- */
/*
 * `seq` counts half-writes.  Readers read copy (seq & 1).  A write moves seq
 * from x to x + 1 (readers leave copy x & 1), fills copy x & 1, moves seq to
 * x + 2 (readers come back to it), fills the other copy.  At rest both copies
 * hold the same values and seq is even; version = seq >> 1.  A writer that
 * stops or dies anywhere leaves the copy readers are sent to whole.
 */

typedef struct csnap_latch {
    /* line 0: what every reader loads */
    _Atomic uint64_t seq;          /* half-writes; copy (seq & 1) is whole */
    _Atomic uint32_t wake;         /* futex word: low 32 bits of seq >> 1 */
    uint32_t nslots;               /* slots per copy; constant after csnap_latch_init() */
    uint32_t stride;               /* slots between copy 0 and copy 1; constant */
    uint32_t ninfo;                /* csnap_slot_info entries after the copies; constant */
    uint8_t pad0[CSNAP_CACHE_LINE - 24];
    /* line 1: the writer's and the waiters' bookkeeping */
    _Atomic uint32_t waiters;      /* threads (any process) inside csnap_latch_wait() */
    _Atomic uint32_t wlock;        /* 1 while a thread of the writer process writes */
    _Atomic int64_t writer_pid;    /* informational: the process that holds the writer role */
    uint8_t pad1[CSNAP_CACHE_LINE - 16];
    /* line 2 on: copy 0 (stride slots), copy 1 (stride slots), slot info */
    _Atomic uint64_t slots[];
} csnap_latch;

_Static_assert(offsetof(csnap_latch, waiters) == CSNAP_CACHE_LINE, "latch line 1");
_Static_assert(offsetof(csnap_latch, slots) == 2 * CSNAP_CACHE_LINE, "latch line 2");

/* Slots per copy, rounded up so each copy starts on its own cache line. */
static inline uint32_t csnap_latch_stride(uint32_t nslots)
{
    return (uint32_t)(csnap_round_line((size_t)nslots * sizeof(uint64_t)) / sizeof(uint64_t));
}

/* Bytes a latch of `nslots` slots and `ninfo` slot-info entries occupies. */
static inline size_t csnap_latch_size(uint32_t nslots, uint32_t ninfo)
{
    return offsetof(csnap_latch, slots)
        + 2 * (size_t)csnap_latch_stride(nslots) * sizeof(uint64_t)
        + csnap_round_line((size_t)ninfo * sizeof(csnap_slot_info));
}

/* The slot-info table after the two copies (ninfo entries). */
static inline csnap_slot_info *csnap_latch_info(csnap_latch *l)
{
    return (csnap_slot_info *)(void *)(l->slots + 2 * (size_t)l->stride);
}

/* Lay out a zeroed block of csnap_latch_size() bytes before anyone else can
 * see it: all slots 0, unbounded f64 info, version 0. */
static inline void csnap_latch_init(csnap_latch *l, uint32_t nslots, uint32_t ninfo)
{
    atomic_init(&l->seq, 0);
    atomic_init(&l->wake, 0);
    atomic_init(&l->waiters, 0);
    atomic_init(&l->wlock, 0);
    atomic_init(&l->writer_pid, 0);
    l->nslots = nslots;
    l->stride = csnap_latch_stride(nslots);
    l->ninfo = ninfo;
    for (size_t i = 0; i < 2 * (size_t)l->stride; i++) atomic_init(&l->slots[i], 0);
    csnap_slot_info *info = csnap_latch_info(l);
    for (uint32_t i = 0; i < ninfo; i++) {
        info[i].kind = CSNAP_F64;
        info[i].reserved = 0;
        info[i].fmin = -INFINITY;
        info[i].fmax = INFINITY;
        info[i].imin = INT64_MIN;
        info[i].imax = INT64_MAX;
    }
}

/* A latch in this process's own memory (an in-process record): one aligned
 * allocation of csnap_latch_size(nslots, nslots), laid out by
 * csnap_latch_init(); NULL when out of memory.  Free with csnap_latch_free(). */
static inline csnap_latch *csnap_latch_alloc(uint32_t nslots)
{
    size_t size = csnap_latch_size(nslots, nslots);
    csnap_latch *l = (csnap_latch *)csnap_line_alloc(size);
    if (l == NULL) return NULL;
    memset((void *)l, 0, size);
    csnap_latch_init(l, nslots, nslots);
    return l;
}

static inline void csnap_latch_free(csnap_latch *l)
{
    csnap_line_free(l);
}

/* The pid stored by the holder of the writer role (0: none yet).  Relaxed
 * both ways: informational only; liveness comes from the role's lock. */
static inline int64_t csnap_latch_writer_pid(csnap_latch *l)
{
    return atomic_load_explicit(&l->writer_pid, memory_order_relaxed);
}

static inline void csnap_latch_set_writer_pid(csnap_latch *l, int64_t pid)
{
    atomic_store_explicit(&l->writer_pid, pid, memory_order_relaxed);
}

/* -- latch readers -- */

/* Start a read; the copy to read is (returned value & 1).  Acquire; pairs
 * with the release stores of csnap_latch_switch() (pairing L1). */
static inline uint64_t csnap_latch_read_begin(csnap_latch *l)
{
    return atomic_load_explicit(&l->seq, memory_order_acquire);
}

/* Slot i of the copy `seq` names.  Acquire; pairs with the release stores of
 * csnap_latch_store_bits() (pairing L2: a value stored after the reader's
 * copy was handed to the writer makes csnap_latch_read_retry() fail). */
static inline uint64_t csnap_latch_load_bits(csnap_latch *l, uint64_t seq, uint32_t i)
{
    return atomic_load_explicit(&l->slots[(seq & 1) * (size_t)l->stride + i],
                                memory_order_acquire);
}

static inline double csnap_latch_load_f64(csnap_latch *l, uint64_t seq, uint32_t i)
{
    return csnap_bits_f64(csnap_latch_load_bits(l, seq, i));
}

static inline int64_t csnap_latch_load_i64(csnap_latch *l, uint64_t seq, uint32_t i)
{
    return csnap_bits_i64(csnap_latch_load_bits(l, seq, i));
}

/* Nonzero when the loads since csnap_latch_read_begin() must be discarded
 * (the writer moved on to the copy they read).  Relaxed, as csnap_read_retry():
 * it only has to observe the counter that pairing L2 made visible. */
static inline int csnap_latch_read_retry(csnap_latch *l, uint64_t start)
{
    return atomic_load_explicit(&l->seq, memory_order_relaxed) != start;
}

/* Copy slots [0, n) consistently; bounded like csnap_read().  Never waits for
 * an open (or abandoned) write: it retries only when the counter moved during
 * the copy, so CSNAP_BUSY means a writer flat out overtook every attempt. */
static inline int csnap_latch_read(csnap_latch *l, uint32_t n, uint64_t *out,
                                   uint64_t *seq_out, csnap_read_stats *stats)
{
    for (int attempt = 0; attempt < CSNAP_READ_SPINS + CSNAP_READ_YIELDS; attempt++) {
        uint64_t s = csnap_latch_read_begin(l);
        for (uint32_t i = 0; i < n; i++) out[i] = csnap_latch_load_bits(l, s, i);
        if (!csnap_latch_read_retry(l, s)) {
            *seq_out = s;
            return CSNAP_OK;
        }
        if (stats) stats->retries++;
        if (attempt < CSNAP_READ_SPINS) csnap_cpu_relax();
        else csnap_yield();
    }
    if (stats) stats->busy++;
    return CSNAP_BUSY;
}

/* Copy `len` bytes stored by csnap_latch_store_bytes() out of the copy `seq`
 * names, each 8-byte slot with csnap_latch_load_bits() (acquire, pairing L2);
 * validate with csnap_latch_read_retry() before using them. */
static inline void csnap_latch_load_bytes(csnap_latch *l, uint64_t seq, uint32_t first,
                                          unsigned char *dst, size_t len)
{
    size_t words = len / 8, k;
    for (k = 0; k < words; k++) {
        uint64_t w = csnap_latch_load_bits(l, seq, first + (uint32_t)k);
        memcpy(dst + 8 * k, &w, 8);
    }
    if (len % 8) {
        uint64_t w = csnap_latch_load_bits(l, seq, first + (uint32_t)words);
        memcpy(dst + 8 * words, &w, len % 8);
    }
}

/* Completed writes (seq >> 1).  Acquire, as csnap_latch_read_begin(). */
static inline uint64_t csnap_latch_version(csnap_latch *l)
{
    return atomic_load_explicit(&l->seq, memory_order_acquire) >> 1;
}

/* -- latch writer (one process: the holder of the writer role) -- */

/* One attempt at the writer threads' lock: 1 when taken.  Acquire on
 * success, as csnap_latch_lock() (pairs with csnap_latch_unlock()). */
static inline int csnap_latch_try_lock(csnap_latch *l)
{
    uint32_t expected = 0;
    return atomic_compare_exchange_strong_explicit(&l->wlock, &expected, 1,
                                                   memory_order_acquire, memory_order_relaxed);
}

/* Serialise the writer process's threads: CAS wlock 0 -> 1, spinning, then
 * yielding, then sleeping, up to timeout_ns (< 0: forever).  Acquire on
 * success; pairs with the release in csnap_latch_unlock(), so this thread
 * sees the previous writer thread's stores (and its seq) as its own. */
static inline int csnap_latch_lock(csnap_latch *l, int64_t timeout_ns)
{
    int64_t deadline = -1, pause_ns = 1000;
    for (unsigned attempt = 0;; attempt++) {
        uint32_t expected = 0;
        if (atomic_compare_exchange_weak_explicit(&l->wlock, &expected, 1,
                                                  memory_order_acquire, memory_order_relaxed))
            return CSNAP_OK;
        if (attempt < 64) csnap_cpu_relax();
        else if (attempt < 128) csnap_yield();
        else {
            int64_t now = csnap_monotonic_ns();
            if (deadline < 0)
                deadline = (timeout_ns < 0 || timeout_ns > INT64_MAX - now) ? INT64_MAX
                                                                          : now + timeout_ns;
            if (now >= deadline) return CSNAP_TIMEOUT;
            csnap_sleep_ns(pause_ns);
            if (pause_ns < 1000000) pause_ns *= 2;
        }
    }
}

/* Release the writer threads' lock.  Release; pairs with the acquire CAS of
 * the next csnap_latch_lock(). */
static inline void csnap_latch_unlock(csnap_latch *l)
{
    atomic_store_explicit(&l->wlock, 0, memory_order_release);
}

/* WRITER ONLY (holding the lock): the counter.  Relaxed: the writer role is
 * the only one that stores it, and the lock's acquire ordered its last store. */
static inline uint64_t csnap_latch_writer_seq(csnap_latch *l)
{
    return atomic_load_explicit(&l->seq, memory_order_relaxed);
}

/* WRITER ONLY (holding the lock): the current value of slot i.  Relaxed: only
 * the lock holder stores, and the lock's acquire made every earlier store of
 * the writer role visible (a successor: csnap_latch_recover()'s acquire). */
static inline uint64_t csnap_latch_peek_bits(csnap_latch *l, uint32_t i)
{
    uint64_t s = atomic_load_explicit(&l->seq, memory_order_relaxed);
    return atomic_load_explicit(&l->slots[(s & 1) * (size_t)l->stride + i],
                                memory_order_relaxed);
}

/* WRITER ONLY: store slot i of copy c (the copy readers have left).  Release;
 * pairs with the acquire of csnap_latch_load_bits() (pairing L2: whoever loads
 * this value then sees the counter that sent readers away from copy c). */
static inline void csnap_latch_store_bits(csnap_latch *l, uint32_t c, uint32_t i, uint64_t bits)
{
    atomic_store_explicit(&l->slots[(size_t)c * l->stride + i], bits, memory_order_release);
}

/* WRITER ONLY: store `len` bytes into copy c from slot `first` on, 8 bytes per
 * slot (the last one zero-padded), each with csnap_latch_store_bits(). */
static inline void csnap_latch_store_bytes(csnap_latch *l, uint32_t c, uint32_t first,
                                           const unsigned char *src, size_t len)
{
    size_t words = len / 8, k;
    for (k = 0; k < words; k++) {
        uint64_t w;
        memcpy(&w, src + 8 * k, 8);
        csnap_latch_store_bits(l, c, first + (uint32_t)k, w);
    }
    if (len % 8) {
        uint64_t w = 0;
        memcpy(&w, src + 8 * words, len % 8);
        csnap_latch_store_bits(l, c, first + (uint32_t)words, w);
    }
}

/* WRITER ONLY: move readers from copy (seq_now & 1) to the other copy; returns
 * the new counter.  Release; pairs with the acquire of csnap_latch_read_begin()
 * (pairing L1: a reader sent to a copy sees every store made to it before). */
static inline uint64_t csnap_latch_switch(csnap_latch *l, uint64_t seq_now)
{
    atomic_store_explicit(&l->seq, seq_now + 1, memory_order_release);
    return seq_now + 1;
}

/* WRITER ONLY: after a write (seq even again), wake csnap_latch_wait()ers.
 * The wake store and the waiters load are seq_cst; they pair with the
 * waiters' seq_cst increment and wake load (pairing L3: either the waiter sees
 * the new word and does not sleep, or this sees the waiter and wakes it). */
static inline void csnap_latch_notify(csnap_latch *l, uint64_t seq)
{
    atomic_store_explicit(&l->wake, (uint32_t)(seq >> 1), memory_order_seq_cst);
    if (atomic_load_explicit(&l->waiters, memory_order_seq_cst) != 0) {
#if defined(__linux__)
        /* Shared futex (no FUTEX_PRIVATE_FLAG): waiters live in other processes. */
        syscall(SYS_futex, (uint32_t *)&l->wake, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
#endif
    }
}

/* WRITER ONLY (holding the lock): one whole write of n slots (idx[k] <- bits[k])
 * into both copies, without waking anyone; returns the new counter (even).
 * For a latch nobody waits on (an in-process record without waiters); the
 * orderings are those of csnap_latch_switch() and csnap_latch_store_bits(). */
static inline uint64_t csnap_latch_write_quiet(csnap_latch *l, uint32_t n, const uint32_t *idx,
                                               const uint64_t *bits)
{
    uint64_t s = csnap_latch_writer_seq(l);
    for (int half = 0; half < 2; half++) {
        uint32_t c = (uint32_t)(s & 1);   /* the copy readers are about to leave */
        s = csnap_latch_switch(l, s);
        for (uint32_t k = 0; k < n; k++) csnap_latch_store_bits(l, c, idx[k], bits[k]);
    }
    return s;
}

/* WRITER ONLY (holding the lock): csnap_latch_write_quiet(), then wake
 * csnap_latch_wait()ers.  Readers never wait on it. */
static inline void csnap_latch_write(csnap_latch *l, uint32_t n, const uint32_t *idx,
                                     const uint64_t *bits)
{
    csnap_latch_notify(l, csnap_latch_write_quiet(l, n, idx, bits));
}

/* Fallback read for threads of the writer's process, when csnap_latch_read()
 * reported CSNAP_BUSY (a writer flat out overtook every attempt): take the
 * writer threads' lock, copy slots [0, n) and the counter, release.  The
 * lock's acquire pairs with the release of csnap_latch_unlock() (every store
 * of the last write is visible), so the copy is whole; the relaxed loads are
 * csnap_latch_peek_bits()'s.  The writer waits for the copy, never the other
 * way round; CSNAP_TIMEOUT when the lock stayed taken for timeout_ns.  Not
 * for readers in other processes: a dead writer's lock is never released. */
static inline int csnap_latch_read_locked(csnap_latch *l, uint32_t n, uint64_t *out,
                                          uint64_t *seq_out, int64_t timeout_ns)
{
    if (csnap_latch_lock(l, timeout_ns) != CSNAP_OK) return CSNAP_TIMEOUT;
    for (uint32_t i = 0; i < n; i++) out[i] = csnap_latch_peek_bits(l, i);
    *seq_out = csnap_latch_writer_seq(l);
    csnap_latch_unlock(l);
    return CSNAP_OK;
}

/* WRITER ONLY, on taking over the writer role (after a crash or not): make the
 * copy readers are not sent to equal the one they are, and if the previous
 * writer died half-way (seq odd), finish its write as a write of the values
 * readers already see (the version advances by one).  Acquire load of seq;
 * pairs with the dead writer's last release switch (pairing L1), so the copy
 * is the one readers read.  Returns the counter, even. */
static inline uint64_t csnap_latch_recover(csnap_latch *l)
{
    uint64_t s = atomic_load_explicit(&l->seq, memory_order_acquire);
    uint32_t from = (uint32_t)(s & 1), to = from ^ 1u;
    /* Readers are sent to copy `from`; `to` is the writer's.  Relaxed loads:
     * the dead writer stored nothing to `from` after its last switch. */
    for (uint32_t i = 0; i < l->nslots; i++)
        csnap_latch_store_bits(l, to, i, atomic_load_explicit(
            &l->slots[(size_t)from * l->stride + i], memory_order_relaxed));
    if (s & 1)
        s = csnap_latch_switch(l, s);     /* readers to the repaired copy */
    csnap_latch_notify(l, s);             /* also refreshes a stale futex word */
    atomic_store_explicit(&l->wlock, 0, memory_order_release);  /* as csnap_latch_unlock() */
    return s;
}

/* Wait until the latch's version differs from `seen` (a value of
 * csnap_latch_version()), at most timeout_ns (< 0: forever); 1 when it does,
 * 0 on timeout.  A futex on `wake` on Linux (shared: works across processes),
 * a bounded poll elsewhere.  The waiter count increment and the wake load are
 * seq_cst (pairing L3 with csnap_latch_notify()). */
static inline int csnap_latch_wait(csnap_latch *l, uint64_t seen, int64_t timeout_ns)
{
    int64_t now = csnap_monotonic_ns();
    int64_t deadline = (timeout_ns < 0 || timeout_ns > INT64_MAX - now) ? INT64_MAX
                                                                      : now + timeout_ns;
    int changed = 0;
    atomic_fetch_add_explicit(&l->waiters, 1, memory_order_seq_cst);
    for (;;) {
        /* The word first, then the counter: a word stored by notify() makes the
         * counter stored before it visible (its release, this acquire), so
         * sleeping on a word we loaded can never miss the write it announced. */
        uint32_t w = atomic_load_explicit(&l->wake, memory_order_seq_cst);
        if (csnap_latch_version(l) != seen) { changed = 1; break; }
        now = csnap_monotonic_ns();
        if (now >= deadline) break;
        int64_t left = deadline - now;
#if defined(__linux__)
        if (left > 1000000000) left = 1000000000;  /* re-check at least every second */
        struct timespec ts = { (time_t)(left / 1000000000), (long)(left % 1000000000) };
        syscall(SYS_futex, (uint32_t *)&l->wake, FUTEX_WAIT, w, &ts, NULL, 0);
#else
        csnap_sleep_ns(left < 200000 ? left : 200000);
#endif
    }
    /* Relaxed: the count only decides whether the writer makes a syscall. */
    atomic_fetch_sub_explicit(&l->waiters, 1, memory_order_relaxed);
    return changed;
}

#endif /* CSNAP_SEQLOCK_H */
