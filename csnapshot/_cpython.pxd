# CPython C API functions that Cython's own cpython/*.pxd do not declare (or
# declare without the error value we need).  Every extern lives in a .pxd of
# its own: this one for Python.h, _pycell.pxd for csnap_pycell.h, _seqlock.pxd
# for csnap_seqlock.h.

from cpython.object cimport PyObject

cdef extern from "Python.h":
    # Borrowed reference, or NULL with no error set when the key is absent.
    PyObject *PyDict_GetItemWithError(object d, object key) except? NULL
    long long PyLong_AsLongLongAndOverflow(object o, int *overflow) except? -1
    double PyLong_AsDouble(object o) except? -1.0
