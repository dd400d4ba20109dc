/*
 * csnap_pycell.h - the binding's thread-safety helpers: a one-element list used
 * as a publication cell for a Python object (safe on free-threaded CPython),
 * strong-reference dict iteration, and atomic access to plain members of the
 * Vitals object.
 *
 * A reader must never take a reference to an object that another thread is
 * freeing.  Reading a plain struct member and then Py_INCREF-ing it has
 * exactly that race without the GIL, and Cython's constant-index list read
 * compiles to the same borrowed load.  CPython's own answer is
 * PyList_GetItemRef (3.13+): it takes the reference safely against a
 * concurrent PyList_SetItem, which frees the old item only through CPython's
 * delayed-reclamation machinery.  On GIL builds (or before 3.13) the GIL makes
 * the plain load + incref safe.
 */
#ifndef CSNAP_PYCELL_H
#define CSNAP_PYCELL_H

#include <Python.h>
#include <stdatomic.h>
#include <stdint.h>

/* 1 on free-threaded builds: there the read memo is kept per thread (see
 * _vitals.pyx), because one memo object shared by all reader threads turns
 * every read into atomic reference-count updates on the same cache lines. */
#ifdef Py_GIL_DISABLED
#define CSNAP_FREE_THREADED 1
#else
#define CSNAP_FREE_THREADED 0
#endif

/* A process-wide unique id per record, never reused (unlike an address), so a
 * per-thread memo can never be mistaken for another record's.  Relaxed: only
 * uniqueness matters, not ordering. */
static inline uint64_t csnap_next_uid(void)
{
    static _Atomic uint64_t next_uid = 1;
    return atomic_fetch_add_explicit(&next_uid, 1, memory_order_relaxed);
}

/* The calling thread's private dict (borrowed; NULL without a thread state).
 * Only the owning thread ever touches it, and CPython clears it when the
 * thread ends, so what we cache there is freed with the thread. */
static inline PyObject *csnap_thread_dict(void)
{
    return PyThreadState_GetDict();
}

/* New reference to the cell's object. */
static inline PyObject *csnap_cell_load(PyObject *cell)
{
#if PY_VERSION_HEX >= 0x030D0000
    return PyList_GetItemRef(cell, 0);
#else
    PyObject *item = PyList_GET_ITEM(cell, 0);
    Py_INCREF(item);
    return item;
#endif
}

/* Replace the cell's object (item is borrowed); 0 on success, -1 on error. */
static inline int csnap_cell_store(PyObject *cell, PyObject *item)
{
    Py_INCREF(item);
    return PyList_SetItem(cell, 0, item);  /* steals the new reference */
}

/* PyDict_Next with strong references: 1 and new references in *key/*value
 * for the next entry, 0 at the end.  The step and the increfs run inside the
 * dict's critical section (free-threaded 3.13+; a no-op with the GIL, where
 * nothing else runs between them), so the entry cannot be freed by another
 * thread before we own it.  Between calls the dict may change: PyDict_Next
 * bounds `pos` by the dict's current table, and the caller checks the size. */
static inline int csnap_dict_next_ref(PyObject *d, Py_ssize_t *pos, PyObject **key,
                                      PyObject **value)
{
    int r;
#ifdef Py_GIL_DISABLED
    Py_BEGIN_CRITICAL_SECTION(d);
#endif
    r = PyDict_Next(d, pos, key, value);
    if (r) {
        Py_INCREF(*key);
        Py_INCREF(*value);
    }
#ifdef Py_GIL_DISABLED
    Py_END_CRITICAL_SECTION();
#endif
    return r;
}

/* Plain members of a Vitals object that another thread may read while they
 * change: the record pointer (published once by __init__), the memo uid
 * (renewed once by _restore), the __init__ claim and a held section's counter.
 * GCC/Clang __atomic builtins on the plain members: Cython cannot declare
 * _Atomic members. */
static inline void *csnap_ptr_load_acquire(void **p)
{ return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void csnap_ptr_store_release(void **p, void *v)
{ __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline uint64_t csnap_u64_load_relaxed(uint64_t *p)
{ return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline void csnap_u64_store_relaxed(uint64_t *p, uint64_t v)
{ __atomic_store_n(p, v, __ATOMIC_RELAXED); }
static inline int csnap_int_exchange(int *p, int v)
{ return __atomic_exchange_n(p, v, __ATOMIC_RELAXED); }
static inline uint64_t csnap_u64_exchange_acq_rel(uint64_t *p, uint64_t v)
{ return __atomic_exchange_n(p, v, __ATOMIC_ACQ_REL); }
static inline void csnap_u64_store_release(uint64_t *p, uint64_t v)
{ __atomic_store_n(p, v, __ATOMIC_RELEASE); }
/* A shared-memory handle's role flag: read by writer threads, cleared by
 * close() or in a forked child.  Relaxed: the latch's own lock orders the
 * writes it guards; the flag only says whether to try. */
static inline int csnap_role_load(int *p)
{ return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline void csnap_role_store(int *p, int v)
{ __atomic_store_n(p, v, __ATOMIC_RELAXED); }

#endif /* CSNAP_PYCELL_H */
