# `cimport csnapshot` gives Cython code the seqlock's C API (all `nogil`,
# inlined from csnap_seqlock.h) and the native Vitals type.  See docs/c-api.md.

from csnapshot._seqlock cimport *
from csnapshot._vitals cimport Vitals, vitals_record
