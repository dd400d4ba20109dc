# csnap_pycell.h, declared for Cython: the binding's thread-safety helpers for
# Python objects and plain members of the Vitals object (see the header).

from cpython.object cimport PyObject
from libc.stdint cimport uint64_t

cdef extern from "csnap_pycell.h":
    # The memo cell; see csnap_pycell.h for why not a plain attribute.
    object csnap_cell_load(list cell)
    int csnap_cell_store(list cell, object item) except -1
    bint CSNAP_FREE_THREADED
    uint64_t csnap_next_uid()
    PyObject *csnap_thread_dict()
    # Strong-reference dict iteration (a critical section on free-threaded builds).
    bint csnap_dict_next_ref(object d, Py_ssize_t *pos, PyObject **key, PyObject **value) except -1

    # Plain members of a Vitals that another thread may read while they change.
    void *csnap_ptr_load_acquire(void **p) nogil
    void csnap_ptr_store_release(void **p, void *v) nogil
    uint64_t csnap_u64_load_relaxed(uint64_t *p) nogil
    void csnap_u64_store_relaxed(uint64_t *p, uint64_t v) nogil
    int csnap_int_exchange(int *p, int v) nogil
    uint64_t csnap_u64_exchange_acq_rel(uint64_t *p, uint64_t v) nogil
    void csnap_u64_store_release(uint64_t *p, uint64_t v) nogil
    int csnap_role_load(int *p) nogil
    void csnap_role_store(int *p, int v) nogil
