/*
 * csnap_harness.h - the start gate and stop rule of the native stress harness
 * (_harness.pyx); C, so the nogil reader and writer loops share them.
 *
 * Start: every thread of the run (readers, native writers, a Python writer)
 * waits at a gate until all have arrived; the last to arrive sets the deadlines
 * and opens it.  So no thread spins while the others are still being started
 * -- on 2 cores two early readers can otherwise keep a writer from ever
 * running in a short run -- and thread start-up does not eat into `seconds`.
 *
 * End: readers end once the deadline has passed *and* they have taken
 * `min_reads` copies (or at the hard deadline); writers keep writing until
 * every reader has ended (or the hard deadline).  A reader starved by a
 * flat-out writer on a slow machine (a sanitizer build, a loaded CI box) so
 * still gets its reads against a live writer instead of failing a count.
 */
#ifndef CSNAP_HARNESS_H
#define CSNAP_HARNESS_H

#include <stdatomic.h>
#include <stdint.h>

#include "csnap_seqlock.h"   /* csnap_monotonic_ns, csnap_yield */

typedef struct {
    _Atomic uint32_t not_arrived;       /* threads not yet at the gate */
    _Atomic uint32_t gate_open;
    _Atomic uint32_t readers_running;
    int64_t seconds_ns, max_seconds_ns; /* the run's length and its cap */
    int64_t opened_ns;                  /* set before gate_open, read after it */
    int64_t deadline_ns;                /* the run's nominal end */
    int64_t hard_deadline_ns;           /* the latest end, min_reads or not */
    uint64_t min_reads;                 /* per reader */
} harness_stop;

/* now + ns without signed overflow. */
static inline int64_t harness_add_ns(int64_t now, int64_t ns)
{
    return ns > INT64_MAX - now ? INT64_MAX : now + ns;
}

static inline void harness_open(harness_stop *s)
{
    s->opened_ns = csnap_monotonic_ns();
    s->deadline_ns = harness_add_ns(s->opened_ns, s->seconds_ns);
    s->hard_deadline_ns = harness_add_ns(s->opened_ns, s->max_seconds_ns);
    /* Release: pairs with the acquire load in harness_gate, so a thread
       that sees the gate open also sees the deadlines written above. */
    atomic_store_explicit(&s->gate_open, 1, memory_order_release);
}

static inline void harness_stop_init(harness_stop *s, uint32_t threads, uint32_t readers,
                                     int64_t seconds_ns, int64_t max_seconds_ns,
                                     uint64_t min_reads)
{
    atomic_init(&s->not_arrived, threads);
    atomic_init(&s->gate_open, 0);
    atomic_init(&s->readers_running, readers);
    s->seconds_ns = seconds_ns;
    s->max_seconds_ns = max_seconds_ns;
    s->min_reads = min_reads;
    if (threads == 0)
        harness_open(s);
}

/* A thread that will never reach the gate: count it as arrived, open
   the gate if it was the last one, and never wait (the caller may have
   more threads to account for, on this same thread). */
static inline void harness_leave(harness_stop *s)
{
    /* Relaxed, as in harness_gate. */
    if (atomic_fetch_sub_explicit(&s->not_arrived, 1, memory_order_relaxed) == 1)
        harness_open(s);
}

static inline void harness_gate(harness_stop *s)
{
    /* Relaxed: the count only decides who arrives last; the deadlines
       travel through gate_open's release/acquire pair. */
    if (atomic_fetch_sub_explicit(&s->not_arrived, 1, memory_order_relaxed) == 1) {
        harness_open(s);
        return;
    }
    /* Acquire: pairs with the release store in harness_open. */
    while (!atomic_load_explicit(&s->gate_open, memory_order_acquire))
        csnap_yield();
}

/* readers_running publishes no data -- each thread's counts are read
   after join(), which synchronises -- so it is relaxed both ways. */
static inline void harness_reader_ended(harness_stop *s)
{
    atomic_fetch_sub_explicit(&s->readers_running, 1, memory_order_relaxed);
}

static inline int harness_readers_running(harness_stop *s)
{
    return atomic_load_explicit(&s->readers_running, memory_order_relaxed) != 0;
}

#endif /* CSNAP_HARNESS_H */
