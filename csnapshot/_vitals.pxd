# The native Vitals type, for Cython code that cimports csnapshot.
#
# Its record is a csnap_record (the classic seqlock, layout="classic", the
# default) or a csnap_latch (two copies, layout="latch"); see _seqlock.pxd /
# csnap_seqlock.h.  C-level users get the record pointer once, with the GIL
# (vitals_record or vitals_latch, whichever is not NULL), and may then read
# and write it from any thread without the GIL for as long as they hold a
# reference to the Vitals object.

from libc.stdint cimport int64_t, uint32_t, uint64_t

from csnapshot._seqlock cimport csnap_latch, csnap_record, csnap_slot_info


cdef class _Memo:
    # The boxed values of one consistent read, and the counter it was read at.
    # seq, uid and values are immutable once published, so any thread may use
    # them while it holds a reference; `taken` is only a hint (set under the
    # GIL, or by the one thread that owns a per-thread memo).
    cdef uint64_t seq
    cdef uint64_t uid      # the record it belongs to (per-thread memos only)
    cdef tuple values
    cdef bint taken        # GIL builds: a reader returned it (so the writer boxes the next)


cdef class Vitals:
    cdef csnap_record *_rec        # layout="classic", else NULL
    cdef csnap_latch *_latch       # layout="latch", else NULL
    # The bounds table of whichever record there is.  Stored last by __init__
    # (release), so a non-NULL _info (acquire, _ready) means initialised.
    cdef csnap_slot_info *_info
    cdef uint32_t _n
    cdef tuple _fields
    cdef tuple _names
    cdef dict _index
    # One-element list holding the newest _Memo, read and replaced only
    # through csnap_pycell.h (PyList_GetItemRef / PyList_SetItem), so on
    # free-threaded CPython no reader can take a reference to a memo another
    # thread is freeing.
    cdef list _memo_box
    cdef uint64_t _uid
    cdef object _memo_key
    cdef double _timeout
    cdef int64_t _timeout_ns
    cdef int _claimed      # set once by the __init__ that fills the fields
    cdef object __weakref__

    cdef csnap_slot_info *_ready(self) except NULL
    cdef csnap_record *_record(self) except NULL
    cdef void _init_slot(self, uint32_t i, uint64_t bits) noexcept
    cdef uint64_t _begin(self) except? 0xFFFFFFFFFFFFFFFF
    cdef uint32_t _slot(self, name) except? 0xFFFFFFFF
    cdef _Memo _memo(self)
    cdef int _keep_memo(self, _Memo m) except -1
    cdef _Memo _fresh(self)
    cdef _Memo _read_memo(self)
    cdef tuple _box(self, uint64_t *buf)
    cdef int _convert(self, uint32_t i, object value, bint delta, uint64_t *out) except -1
    cdef _apply_dict(self, dict values, bint delta)
    cdef int _commit(self, Py_ssize_t n, uint32_t *idx, uint64_t *bits, bint delta) except -1
    cdef int _commit_latch(self, Py_ssize_t n, uint32_t *idx, uint64_t *bits, bint delta,
                           bint leave) except -1
    cdef int _leave_memo(self, uint64_t seq, uint64_t *bits) except -1
    cdef object _writer_stalled(self)


cdef inline csnap_record *vitals_record(Vitals v) noexcept:
    """The classic record of `v`; valid while a reference to `v` is held.

    NULL when `v` has the latch layout (use vitals_latch) or was never
    initialised (``Vitals.__new__(Vitals)``, a subclass whose ``__init__``
    skipped ``super().__init__``): check it.
    """
    return v._rec


cdef inline csnap_latch *vitals_latch(Vitals v) noexcept:
    """The latch of a ``layout="latch"`` `v`; valid while a reference to `v` is held.

    NULL for the classic layout (use vitals_record) or an uninitialised `v`.
    Read it as a shared latch (csnap_latch_read_begin / _load_* / _read_retry);
    write it only inside csnap_latch_lock() / csnap_latch_unlock(), with
    csnap_latch_write_quiet() (nobody waits on an in-process latch).
    """
    return v._latch


# Check one value for `field` and turn it into slot bits (clamped to `info`
# unless it is a delta): the one conversion every record type uses.
cdef int vitals_convert(object field, const csnap_slot_info *info, object value, bint delta,
                        uint64_t *out) except -1


# A delta (slot bits from vitals_convert) added to the current bits of its
# slot, clamped: False, nothing changed, when a float sum is not finite; then
# vitals_delta_overflow(field, current, delta) is the ValueError to raise.
cdef bint vitals_add_delta(const csnap_slot_info *info, uint64_t current,
                           uint64_t *bits) noexcept
cdef object vitals_delta_overflow(object field, uint64_t current, uint64_t delta)
