#!/usr/bin/env bash
# Build csnapshot with a sanitizer into a throwaway venv and run the native
# stress tests under it.
#
#   scripts/sanitize.sh thread    # ThreadSanitizer: data races in the seqlock
#   scripts/sanitize.sh address   # AddressSanitizer + UBSan
#
# Env: PYTHON (interpreter, default python3), CSNAPSHOT_STRESS_SECONDS (default 0.5),
# SANITIZE_VENV (venv folder, default a temporary one).  Extra args go to pytest.
# Exit status is pytest's; any sanitizer report also fails the run.
set -euo pipefail
kind=${1:-}
case "$kind" in
  thread|address) shift ;;
  -h|--help|"") sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; [ -n "$kind" ]; exit $? ;;
  *) echo "usage: $0 thread|address [pytest args]" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
venv=${SANITIZE_VENV:-$(mktemp -d)/venv}
log=$(mktemp -d)/sanitizer
echo "== building csnapshot with CSNAPSHOT_SANITIZE=$kind into $venv" >&2
"$py" -m venv "$venv"
"$venv/bin/python" -m pip install -q -U pip >/dev/null
# --no-build-isolation + a fresh copy of the tree: the sanitizer flags must reach
# this build, never a cached wheel.
"$venv/bin/python" -m pip install -q "setuptools>=77" "Cython>=3.1,<3.4" pytest >/dev/null
tree=$(mktemp -d)/tree
mkdir -p "$tree"
# Source files only (tracked or new, never build/ output): a stale object file
# would silently skip the instrumented compile.
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$tree"
( cd "$tree" && CSNAPSHOT_SANITIZE=$kind "$venv/bin/python" -m pip install -q --no-build-isolation --no-cache-dir . )
so=$(find "$venv" -path '*csnapshot/_vitals*.so' | head -1)
marker=$([ "$kind" = thread ] && echo __tsan_ || echo __asan_)
if [ "$(nm -D "$so" | grep -c "$marker")" -eq 0 ]; then
  echo "error: $so was not built with the $kind sanitizer (no $marker symbols)" >&2
  exit 3
fi
if [ "$kind" = thread ]; then
  preload=$(gcc -print-file-name=libtsan.so)
  export TSAN_OPTIONS="halt_on_error=0 exitcode=66 log_path=$log report_signal_unsafe=0"
else
  preload="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
  export ASAN_OPTIONS="detect_leaks=0 exitcode=66 log_path=$log"
  export UBSAN_OPTIONS="print_stacktrace=1 halt_on_error=1 log_path=$log"
  export PYTHONMALLOC=malloc
fi
export CSNAPSHOT_STRESS_SECONDS=${CSNAPSHOT_STRESS_SECONDS:-0.5}
export CSNAPSHOT_STRESS_MIN_READS=${CSNAPSHOT_STRESS_MIN_READS:-10000}
echo "== running the stress tests under $kind sanitizer (LD_PRELOAD=$preload)" >&2
status=0
( cd "$tree" && LD_PRELOAD="$preload" "$venv/bin/pytest" -p no:cacheprovider -q -s \
    tests/lib/test_stress.py tests/lib/test_harness_sync.py tests/lib/test_native.py tests/lib/test_vitals_contract.py \
    tests/lib/test_shared_stress.py "$@" ) || status=$?
if ls "$log".* >/dev/null 2>&1; then
  echo "== $kind sanitizer reports:" >&2
  cat "$log".* >&2
  [ "$status" -ne 0 ] || status=1
else
  echo "== $kind sanitizer: no reports" >&2
fi
exit "$status"
