"""Build the Cython extensions of csnapshot.

Environment switches (never edit this file to get a debug build):
  CSNAPSHOT_SANITIZE=thread   build with ThreadSanitizer  (run with LD_PRELOAD=libtsan.so)
  CSNAPSHOT_SANITIZE=address  build with AddressSanitizer + UBSan
  CSNAPSHOT_DEBUG=1           -O0 -g, assertions on
  CSNAPSHOT_ANNOTATE=1        write Cython's annotated HTML next to the generated C
See docs/development/sanitizers.md.
"""

import os
import sys

from Cython.Build import cythonize
from setuptools import Extension, setup

sanitize = os.environ.get("CSNAPSHOT_SANITIZE", "").strip().lower()
if sanitize not in ("", "thread", "address"):
    sys.exit(f"CSNAPSHOT_SANITIZE must be 'thread' or 'address', got {sanitize!r}")

compile_args = []
link_args = []
if sys.platform == "win32":
    compile_args += ["/std:c11", "/experimental:c11atomics"]
else:
    compile_args += ["-std=c11", "-O2", "-Wall", "-Wno-unused-function"]
if os.environ.get("CSNAPSHOT_DEBUG"):
    compile_args += ["-O0", "-g", "-UNDEBUG"]
if sanitize == "thread":
    compile_args += ["-fsanitize=thread", "-O1", "-g", "-fno-omit-frame-pointer"]
    link_args += ["-fsanitize=thread"]
elif sanitize == "address":
    compile_args += ["-fsanitize=address,undefined", "-O1", "-g", "-fno-omit-frame-pointer"]
    link_args += ["-fsanitize=address,undefined"]

here = os.path.dirname(os.path.abspath(__file__))
common = dict(
    include_dirs=[os.path.join(here, "csnapshot")],
    depends=["csnapshot/csnap_seqlock.h", "csnapshot/csnap_pycell.h", "csnapshot/_seqlock.pxd", "csnapshot/_vitals.pxd",
             "csnapshot/_shared.pxd"],
    extra_compile_args=compile_args,
    extra_link_args=link_args,
)
extensions = [
    Extension("csnapshot._vitals", ["csnapshot/_vitals.pyx"], **common),
    Extension("csnapshot._harness", ["csnapshot/_harness.pyx"], **common),
    Extension("csnapshot._shared", ["csnapshot/_shared.pyx"], **common),
]

setup(
    ext_modules=cythonize(
        extensions,
        build_dir="build/cython",
        annotate=bool(os.environ.get("CSNAPSHOT_ANNOTATE")),
        compiler_directives={"language_level": 3, "freethreading_compatible": True},
    )
)
