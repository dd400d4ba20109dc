# The C declarations of the native stress harness (_harness.pyx): the
# comparison locks and the run's start gate / stop rule (csnap_harness.h).

from libc.stdint cimport int64_t, uint32_t, uint64_t

# The comparison locks (sync="mutex" / "rwlock").  Opaque to Cython: the C
# compiler knows their sizes from <pthread.h>.
cdef extern from "<pthread.h>" nogil:
    ctypedef struct pthread_mutex_t:
        pass
    ctypedef struct pthread_rwlock_t:
        pass
    int pthread_mutex_init(pthread_mutex_t *m, const void *attr)
    int pthread_mutex_destroy(pthread_mutex_t *m)
    int pthread_mutex_lock(pthread_mutex_t *m)
    int pthread_mutex_unlock(pthread_mutex_t *m)
    int pthread_rwlock_init(pthread_rwlock_t *l, const void *attr)
    int pthread_rwlock_destroy(pthread_rwlock_t *l)
    int pthread_rwlock_rdlock(pthread_rwlock_t *l)
    int pthread_rwlock_wrlock(pthread_rwlock_t *l)
    int pthread_rwlock_unlock(pthread_rwlock_t *l)

# The start gate and the stop rule: see csnap_harness.h.
cdef extern from "csnap_harness.h":
    ctypedef struct harness_stop:
        int64_t opened_ns
        int64_t deadline_ns
        int64_t hard_deadline_ns
        uint64_t min_reads
    void harness_stop_init(harness_stop *s, uint32_t threads, uint32_t readers,
                           int64_t seconds_ns, int64_t max_seconds_ns, uint64_t min_reads) nogil
    void harness_gate(harness_stop *s) nogil
    void harness_leave(harness_stop *s) nogil
    int64_t harness_add_ns(int64_t now, int64_t ns) nogil
    void harness_reader_ended(harness_stop *s) nogil
    bint harness_readers_running(harness_stop *s) nogil


cdef extern from "<stdlib.h>" nogil:
    void *aligned_alloc(size_t alignment, size_t size)
    void free(void *p)
