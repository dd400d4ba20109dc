/*
 * csnap_seqlock.h - a seqlock around a record of 64-bit numeric slots.
 *
 * One thread at a time writes a handful of numbers (a "record"); any number of
 * threads read all of them as one consistent copy, without taking a lock and
 * without the Python GIL.  Readers never make the writer wait; a reader that
 * overlaps a write notices it and tries again.
 *
 * Reader (the whole protocol, four lines):
 *
 *     do {
 *         seq = csnap_read_begin(rec);
 *         energy = csnap_load_f64(rec, 0);  ticks = csnap_load_i64(rec, 1);
 *     } while (csnap_read_retry(rec, seq));
 *
 * csnap_read() does that loop with a bounded spin and reports CSNAP_BUSY
 * instead of spinning forever; csnap_read_locked() is the fallback that takes
 * the writers' lock once (Linux read_seqbegin_or_lock()).
 *
 * Writer:
 *
 *     if (csnap_write_begin(rec, timeout_ns, &seq) == CSNAP_OK) {
 *         csnap_store_f64(rec, 0, 42.0);
 *         csnap_write_end(rec, seq);
 *     }
 *
 * Rules:
 *  - Numbers only: a slot holds an int64 or the bit pattern of a double.
 *    Never store a pointer here - a reader may copy a value that is being
 *    overwritten and only later learn that the copy was invalid.
 *  - Nothing may fail between csnap_write_begin() and csnap_write_end():
 *    validate and convert first.  A section left open makes every reader take
 *    the fallback path (and, after its timeout, report a stalled writer).
 *  - Writers are serialised by the sequence counter itself: begin is a CAS
 *    from an even value to the next odd one, so a second writer waits (bounded
 *    by its timeout) and can never interleave its stores with the first's.
 *
 * Memory orderings.  Every access to shared state is a C11 atomic with an
 * explicit order, so a racing read is never undefined behaviour.  We use
 * release stores / acquire loads on the slots rather than the fence-based form
 * (Boehm 2012, "Can Seqlocks Get Along With Programming Language Memory
 * Models?", Fig. 6) because ThreadSanitizer does not model
 * atomic_thread_fence; on x86-64 both forms compile to plain moves.  The two
 * pairings that make it correct:
 *
 *  (A) csnap_write_end()'s release store of the even counter pairs with
 *      csnap_read_begin()'s acquire load: a reader that sees the even value
 *      sees every slot store of that write (no older value can be read).
 *  (B) each slot store is a release store, so the writer's odd counter (the
 *      CAS in csnap_write_try_begin(), sequenced before it) happens-before any
 *      acquire load that reads the new slot value.  The reader's final counter
 *      load is sequenced after those acquire loads, so by coherence it sees
 *      at least the odd value and csnap_read_retry() reports the tear.
 *
 * The counter is 64 bits: at 1e8 writes per second it wraps after ~2900
 * years, so equality of two counter values means "no write in between".
 *
 * Layout: one allocation, aligned to and padded to whole cache lines.  The
 * counter and the slots share the first line(s) - every reader needs both -
 * and nothing else in the process shares those lines.  Per-slot bounds live
 * after the slots, on their own lines; they are written once by
 * csnap_record_init() and only read afterwards.
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

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2,
               "csnap_seqlock.h needs lock-free 64-bit atomics");
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
    uint32_t nslots;                 /* constant after csnap_record_init() */
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
#if defined(_WIN32)
    csnap_record *r = (csnap_record *)_aligned_malloc(size, CSNAP_CACHE_LINE);
#else
    csnap_record *r = (csnap_record *)aligned_alloc(CSNAP_CACHE_LINE, size);
#endif
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
#if defined(_WIN32)
    _aligned_free(r);
#else
    free(r);
#endif
}

/* ---- readers ---------------------------------------------------------- */

/* Start an optimistic read.  Acquire pairs with the release store in
 * csnap_write_end(): seeing its even value means seeing that write's slots. */
static inline uint64_t csnap_read_begin(csnap_record *r)
{
    return atomic_load_explicit(&r->seq, memory_order_acquire);
}

/* One slot.  Acquire pairs with the release store in csnap_store_bits(): if
 * this load returns a value of a write that began after csnap_read_begin(),
 * that write's odd counter is visible to csnap_read_retry() (pairing B). */
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

/* Nonzero when the values loaded since csnap_read_begin() must be discarded:
 * the read began inside a write section, or a write started since.  Relaxed
 * is enough: the acquire slot loads before it keep it from moving up, and it
 * only has to observe the odd value that pairing B made visible. */
static inline int csnap_read_retry(csnap_record *r, uint64_t start)
{
    return (start & 1) != 0
        || atomic_load_explicit(&r->seq, memory_order_relaxed) != start;
}

/* One attempt at copying all slots; returns 1 on a consistent copy. */
static inline int csnap_read_try(csnap_record *r, uint64_t *out, uint64_t *seq_out)
{
    uint64_t start = csnap_read_begin(r);
    if (start & 1) return 0;
    for (uint32_t i = 0; i < r->nslots; i++) out[i] = csnap_load_bits(r, i);
    if (csnap_read_retry(r, start)) return 0;
    *seq_out = start;
    return 1;
}

/* Copy all slots consistently.  Bounded: CSNAP_READ_SPINS tries with a CPU
 * pause, then CSNAP_READ_YIELDS tries yielding the CPU, then CSNAP_BUSY.  A
 * writer stalled inside its section can therefore never livelock a reader;
 * the caller decides what to do (csnap_read_locked(), a cached copy, an
 * error).  `stats` may be NULL. */
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

/* Try to open a write section.  The CAS from an even `seq` to the next odd
 * value is the writers' lock.  Acquire on success pairs with the previous
 * writer's release in csnap_write_end(), so this writer starts from that
 * writer's slot values (needed for read-modify-write such as deltas). */
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

/* Open a write section, waiting for another writer if needed: spin, then
 * yield, then sleep with a growing pause, up to timeout_ns (< 0: forever).
 * Returns CSNAP_OK with the odd counter in *seq_out, or CSNAP_TIMEOUT. */
static inline int csnap_write_begin(csnap_record *r, int64_t timeout_ns, uint64_t *seq_out)
{
    if (csnap_write_try_begin(r, seq_out)) return CSNAP_OK;
    /* The deadline saturates: a timeout too large to add to the clock (say
     * INT64_MAX for "about forever") must wait, not overflow (undefined
     * behaviour, in practice a deadline in the past and an instant timeout). */
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

/* Store one slot inside an open section.  Release: orders the odd counter
 * (and the earlier stores) before this value for any reader that acquires it
 * (pairing B). */
static inline void csnap_store_bits(csnap_record *r, uint32_t i, uint64_t bits)
{
    atomic_store_explicit(&r->slots[i], bits, memory_order_release);
}

/* WRITERS ONLY: the writer's own view of a slot inside its open section
 * (for read-modify-write such as deltas).  Nobody else stores while we hold
 * the section, so relaxed suffices - for the section's owner.  A reader must
 * use csnap_load_bits(): between csnap_read_begin() and csnap_read_retry() a
 * relaxed load breaks pairing B and lets a torn copy validate.  Hence the
 * csnap_write_ prefix, so no reader picks it next to csnap_load_bits(). */
static inline uint64_t csnap_write_peek_bits(csnap_record *r, uint32_t i)
{
    return atomic_load_explicit(&r->slots[i], memory_order_relaxed);
}

/* Close the section: the next even value.  Release pairs with the acquire in
 * csnap_read_begin() (pairing A) and in the next csnap_write_try_begin(). */
static inline void csnap_write_end(csnap_record *r, uint64_t seq_odd)
{
    atomic_store_explicit(&r->seq, seq_odd + 1, memory_order_release);
}

/* Close a section IN WHICH NOTHING WAS STORED: the counter goes back to its
 * previous even value, so optimistic readers that began before the section
 * still validate.  After any store this is wrong - a reader that began before
 * the section and loaded some new values would see its start value again and
 * accept a torn copy - so a section that stored anything must end with
 * csnap_write_end().  Release pairs with the acquire of the next writer, as in
 * csnap_write_end(). */
static inline void csnap_write_abort_unchanged(csnap_record *r, uint64_t seq_odd)
{
    atomic_store_explicit(&r->seq, seq_odd - 1, memory_order_release);
}

/* Fallback read: take the writers' lock (so no write can overlap), copy,
 * release without bumping the counter.  Waits at most timeout_ns for a
 * writer to finish; CSNAP_TIMEOUT means the section stayed open that long. */
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

/* Completed write sections (reads the counter once, no validation). */
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

#endif /* CSNAP_SEQLOCK_H */
