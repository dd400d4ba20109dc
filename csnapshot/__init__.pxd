# `cimport csnapshot` gives Cython code the seqlock's C API (all `nogil`,
# inlined from csnap_seqlock.h), the native Vitals type and the shared-memory
# handles.  See docs/c-api.md.

from csnapshot._seqlock cimport *
from csnapshot._vitals cimport Vitals, vitals_latch, vitals_record
# The shared-memory handles and their latch (readers in any process).
from csnapshot._shared cimport SharedBytes, SharedVitals, shared_latch
