# The shared-memory types, for Cython code that cimports csnapshot.
#
# A handle's latch (csnap_latch of csnap_seqlock.h) lives in the segment's
# mapping and stays valid while a reference to the handle is held.  C-level
# readers in any process use csnap_latch_read_begin / csnap_latch_load_* /
# csnap_latch_read_retry on it without the GIL (docs/c-api.md).

from libc.stdint cimport int64_t, uint32_t, uint64_t

from csnapshot._seqlock cimport csnap_latch, csnap_slot_info
from csnapshot._vitals cimport _Memo


cdef class _SharedBase:
    cdef char *_map
    cdef size_t _size
    cdef csnap_latch *_latch
    cdef int _fd                 # our open file of the segment (its flock state)
    cdef int _writer             # 1 while this handle holds the writer role
    cdef int _writable_map       # the mapping may be written (the futex waiter count)
    cdef readonly str path
    cdef double _timeout
    cdef int64_t _timeout_ns
    cdef list _memo_box
    cdef int64_t _owner_pid      # the process this handle was made in
    cdef object _role_lock       # serialises close() with itself
    cdef object __weakref__

    cdef int _attach(self, int fd, bint writable, header, double timeout) except -1
    cdef int _check_latch(self, header, uint32_t ninfo) except -1
    cdef int _forked(self) except -1
    cdef int _need_writer(self) except -1
    cdef int _lock(self) except -1
    cdef object _current_version(self)


cdef class SharedVitals(_SharedBase):
    cdef uint32_t _n
    cdef tuple _fields
    cdef tuple _names
    cdef dict _index
    cdef csnap_slot_info *_info
    cdef uint64_t _uid
    cdef object _memo_key

    cdef int _setup(self, tuple schema) except -1
    cdef int _init_slots(self) except -1
    cdef _Memo _memo(self)
    cdef int _keep_memo(self, _Memo m) except -1
    cdef _Memo _fresh(self)
    cdef uint32_t _slot(self, name) except? 0xFFFFFFFF
    cdef int _apply(self, list items, bint delta) except -1
    cdef int _commit(self, Py_ssize_t n, uint32_t *idx, uint64_t *bits, bint delta) except -1


cdef class SharedFieldWriter:
    cdef SharedVitals _vitals
    cdef tuple _slots
    cdef uint32_t _idx[32]
    cdef Py_ssize_t _n


cdef class _BytesMemo:
    cdef uint64_t seq
    cdef object version
    cdef bytes data


cdef class SharedBytes(_SharedBase):
    cdef readonly uint64_t capacity

    cdef int _check(self, header) except -1
    cdef object _current_version(self)
    cdef _BytesMemo _read_memo(self)


cdef inline csnap_latch *shared_latch(_SharedBase h) noexcept:
    """The latch of a SharedVitals or SharedBytes handle; valid while `h` is referenced."""
    return h._latch
