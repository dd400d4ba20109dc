#!/usr/bin/env bash
# Provide a free-threaded CPython (a `--disable-gil` build) on Debian machines.
#
# Debian does not package a free-threaded interpreter, so this script builds
# one from the upstream tarball that Debian ships in its CPython *source
# package* (fetched with apt from the machine's own Debian mirror), installs it
# into a cache folder outside the checkout, and prints the interpreter path as
# the last line on stdout:
#
#     FT=$(scripts/build-freethreaded-python.sh)
#     "$FT" -m venv .venv-ft
#
# A working interpreter in the cache is reused immediately (no rebuild).
# Run with --help for options, environment variables and exit codes.
set -euo pipefail

PROG=${0##*/}

usage() {
    cat <<EOF
Usage: $PROG [options]

Provide a free-threaded (--disable-gil) CPython, building it from Debian's
CPython source package if necessary.  Progress goes to stderr; on success the
last line on stdout is the absolute path of the interpreter.

Options:
  --prefix DIR        install prefix (default: \$CSNAPSHOT_FT_PREFIX, else
                      \${XDG_CACHE_HOME:-\$HOME/.cache}/csnapshot/python-ft/<version>)
  --version V         3.14, 3.13 or auto (default: auto = try 3.14, then 3.13)
  --print-path        only print the path of an already-built interpreter;
                      exit 1 if there is none (never builds, never uses apt)
  --jobs N            parallel make jobs (default: nproc)
  --tsan              build a ThreadSanitizer interpreter instead
                      (./configure --disable-gil --with-thread-sanitizer) into
                      its own prefix (default: \${XDG_DATA_HOME:-\$HOME/.local/
                      share}/csnapshot/python-ft-tsan/<version>); reuses the source
                      tarball kept by an earlier build, else fetches it as
                      usual.  CSNAPSHOT_FT_PYTHON and CSNAPSHOT_FT_PREFIX are
                      ignored with --tsan (they name the normal build)
  -h, --help          show this help

Environment:
  CSNAPSHOT_FT_PYTHON   use this existing interpreter if it is a free-threaded
                        build (printed as-is, nothing is built)
  CSNAPSHOT_FT_PREFIX   same as --prefix

What a build does (needs root, because it uses apt):
  * adds a deb-src entry for Debian trixie (main) in
    $SRC_ENTRY_FILE, reusing the URIs and Signed-By
    keyring of the machine's existing Debian entry, and runs apt-get update
    for that entry only;
  * for 3.14 tries the suites forky and sid through a private, temporary apt
    configuration (nothing about them is written to /etc/apt), then trixie;
    for 3.13 uses trixie;
  * downloads the source package into a temporary folder next to the prefix,
    builds the upstream *.orig.tar.xz with ./configure --disable-gil, and
    moves the installation into place only after it has been verified;
  * keeps a copy of the fetched *.orig.tar.* in
    \${XDG_CACHE_HOME:-\$HOME/.cache}/csnapshot/sources (reused by --tsan).

Exit codes:
  0  success (last stdout line = interpreter path)
  1  --print-path: no interpreter built yet; or an unexpected error
  2  usage error, or CSNAPSHOT_FT_PYTHON is not a free-threaded interpreter
  3  cannot build here: the source could not be fetched (no Debian apt
     entry, not root, mirror has no such file, ...) or build prerequisites
     could not be installed
  4  the build itself failed (configure, make, make install or verification)
EOF
}

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
    local code=$1
    shift
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    exit "$code"
}

SRC_ENTRY_FILE=/etc/apt/sources.list.d/csnapshot-python-src.sources
SRC_SUITE=trixie # written to $SRC_ENTRY_FILE

# ---------------------------------------------------------------- arguments
opt_prefix=${CSNAPSHOT_FT_PREFIX:-}
opt_version=auto
opt_print_path=0
opt_jobs=
opt_tsan=0
prefix_from_cli=0

need_arg() { [[ $# -ge 2 && -n $2 ]] || die 2 "option $1 needs an argument (see --help)"; }

while [[ $# -gt 0 ]]; do
    case $1 in
    -h | --help) usage; exit 0 ;;
    --prefix) need_arg "$@"; opt_prefix=$2; prefix_from_cli=1; shift 2 ;;
    --prefix=*) opt_prefix=${1#*=}; prefix_from_cli=1; shift ;;
    --version) need_arg "$@"; opt_version=$2; shift 2 ;;
    --version=*) opt_version=${1#*=}; shift ;;
    --print-path) opt_print_path=1; shift ;;
    --jobs | -j) need_arg "$@"; opt_jobs=$2; shift 2 ;;
    --jobs=*) opt_jobs=${1#*=}; shift ;;
    --tsan) opt_tsan=1; shift ;;
    *) die 2 "unknown argument: $1 (see --help)" ;;
    esac
done

case $opt_version in
auto) versions=(3.14 3.13) ;;
3.14 | 3.13) versions=("$opt_version") ;;
*) die 2 "--version must be 3.14, 3.13 or auto (got '$opt_version')" ;;
esac

if [[ -z $opt_jobs ]]; then
    opt_jobs=$(nproc 2>/dev/null || echo 2)
elif ! [[ $opt_jobs =~ ^[1-9][0-9]*$ ]]; then
    die 2 "--jobs must be a positive integer (got '$opt_jobs')"
fi

cache_root=${XDG_CACHE_HOME:-$HOME/.cache}/csnapshot/python-ft
# Copies of fetched source tarballs (see --tsan).
src_cache=${XDG_CACHE_HOME:-$HOME/.cache}/csnapshot/sources
flavour="free-threaded"
configure_extra=()
if [[ $opt_tsan == 1 ]]; then
    # Not under ~/.cache next to the normal build: tools that look there for
    # "the" free-threaded python3.13t must never pick this one (any TSan report,
    # even one in CPython itself, makes it exit 66 - pip included).
    cache_root=${XDG_DATA_HOME:-$HOME/.local/share}/csnapshot/python-ft-tsan
    flavour="free-threaded, ThreadSanitizer"
    configure_extra=(--with-thread-sanitizer)
    # The environment names the normal (non-TSan) build; only --prefix applies.
    unset CSNAPSHOT_FT_PYTHON
    [[ $prefix_from_cli == 1 ]] || opt_prefix=
fi
if [[ -n $opt_prefix ]]; then
    [[ $opt_prefix == /* ]] || opt_prefix=$PWD/$opt_prefix
    opt_prefix=${opt_prefix%/}
    [[ -n $opt_prefix ]] || die 2 "refusing to use / as the prefix"
fi

# Install prefix for a given version.
prefix_for() {
    if [[ -n $opt_prefix ]]; then
        printf '%s\n' "$opt_prefix"
    else
        printf '%s/%s\n' "$cache_root" "$1"
    fi
}

# ---------------------------------------------------------------- checks
# True if $1 runs and is a free-threaded build with the GIL actually disabled.
is_free_threaded() {
    [[ -x $1 ]] || return 1
    if [[ $opt_tsan == 1 ]]; then
        # --tsan: also configured --with-thread-sanitizer; exitcode=0 keeps
        # TSan reports (if any) from changing the exit status.
        env -u PYTHON_GIL TSAN_OPTIONS="${TSAN_OPTIONS:-} exitcode=0" "$1" -I -c '
import sys, sysconfig
ok = sysconfig.get_config_var("Py_GIL_DISABLED") == 1 and sys._is_gil_enabled() is False
ok = ok and "--with-thread-sanitizer" in (sysconfig.get_config_var("CONFIG_ARGS") or "")
sys.exit(0 if ok else 1)' >/dev/null 2>&1
        return
    fi
    env -u PYTHON_GIL "$1" -I -c '
import sys, sysconfig
ok = sysconfig.get_config_var("Py_GIL_DISABLED") == 1 and sys._is_gil_enabled() is False
sys.exit(0 if ok else 1)' >/dev/null 2>&1
}

abspath() { (cd "$(dirname "$1")" && printf '%s/%s\n' "$(pwd -P)" "$(basename "$1")"); }

# 1. An interpreter given explicitly by the user.
if [[ -n ${CSNAPSHOT_FT_PYTHON:-} ]]; then
    ft=$CSNAPSHOT_FT_PYTHON
    if [[ $ft != */* ]]; then
        ft=$(command -v "$ft" 2>/dev/null) ||
            die 2 "CSNAPSHOT_FT_PYTHON=$CSNAPSHOT_FT_PYTHON: not found on PATH"
    fi
    is_free_threaded "$ft" ||
        die 2 "CSNAPSHOT_FT_PYTHON=$CSNAPSHOT_FT_PYTHON is not a working free-threaded interpreter" \
            "(needs Py_GIL_DISABLED == 1 and sys._is_gil_enabled() False); unset it to let this script build one"
    ft=$(abspath "$ft")
    log "using CSNAPSHOT_FT_PYTHON=$ft"
    printf '%s\n' "$ft"
    exit 0
fi

# 2. An interpreter this script built earlier.
for v in "${versions[@]}"; do
    p=$(prefix_for "$v")/bin/python${v}t
    if is_free_threaded "$p"; then
        if [[ $opt_print_path == 0 ]]; then
            log "reusing existing $flavour interpreter $p (no rebuild)"
        fi
        printf '%s\n' "$p"
        exit 0
    fi
done

if [[ $opt_print_path == 1 ]]; then
    checked=()
    for v in "${versions[@]}"; do checked+=("$(prefix_for "$v")/bin/python${v}t"); done
    log "no $flavour interpreter built yet (checked: ${checked[*]})"
    exit 1
fi

# ---------------------------------------------------------------- prerequisites
command -v apt-get >/dev/null 2>&1 ||
    die 3 "apt-get not found: this script builds from Debian's CPython source package and only works on Debian." \
        "Set CSNAPSHOT_FT_PYTHON to an existing free-threaded interpreter instead."

if [[ $(id -u) != 0 ]]; then
    die 3 "building needs root (apt-get is used to add a deb-src entry, fetch the source and install build" \
        "dependencies); re-run with sudo, or set CSNAPSHOT_FT_PYTHON to an existing free-threaded interpreter."
fi

# Build dependencies (the usual CPython set); only missing ones are installed.
build_deps=(
    build-essential pkg-config xz-utils
    libssl-dev libffi-dev zlib1g-dev libbz2-dev liblzma-dev libsqlite3-dev
    libreadline-dev libncurses-dev uuid-dev
)
missing=()
for pkg in "${build_deps[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [[ $status == installed ]] || missing+=("$pkg")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    log "installing missing build dependencies: ${missing[*]}"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2; then
        log "apt-get install failed, retrying after apt-get update"
        apt-get update >&2 || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2 ||
            die 3 "could not install build dependencies: ${missing[*]}." \
                "Install them by hand, or set CSNAPSHOT_FT_PYTHON to an existing free-threaded interpreter."
    fi
fi


# ---------------------------------------------------------------- apt source entry
# awk program: print the URIs and Signed-By (rest of the lines, may be a
# multi-line inline key) of the first enabled binary Debian entry in a deb822
# file, ignoring -security suites.
read -r -d '' AWK_DEB822 <<'AWK' || true
function flush() {
    if (!done && types ~ /(^|[ \t])deb([ \t]|$)/ && enabled != "no" &&
        uris ~ /\/debian\/?([ \t]|$)/ && suites !~ /-security/ && uris != "") {
        print uris; if (signed != "") print signed; done = 1
    }
    types = uris = suites = signed = enabled = lastkey = ""
}
/^#/ { next }
/^[ \t]*$/ { flush(); next }
/^[ \t]/ { if (lastkey == "signed-by") signed = signed "\n" $0; next }
{
    key = tolower($0); sub(/:.*/, "", key); lastkey = key
    val = $0; sub(/^[^:]*:[ \t]*/, "", val); sub(/[ \t]+$/, "", val)
    if (key == "types") types = val
    else if (key == "uris") uris = val
    else if (key == "suites") suites = val
    else if (key == "signed-by") signed = val
    else if (key == "enabled") enabled = tolower(val)
}
END { flush() }
AWK

# Same for the classic one-line format: deb [options] URI suite components...
read -r -d '' AWK_ONELINE <<'AWK' || true
/^[ \t]*deb[ \t]/ {
    line = $0; sub(/^[ \t]*deb[ \t]+/, "", line); opts = ""
    if (line ~ /^\[/) {
        opts = line; sub(/\].*/, "", opts); sub(/^\[/, "", opts)
        sub(/^[^\]]*\][ \t]*/, "", line)
    }
    split(line, w, /[ \t]+/)
    if (w[1] ~ /\/debian\/?$/ && w[2] !~ /-security/) {
        n = split(opts, o, /[ \t]+/)
        print w[1]
        for (i = 1; i <= n; i++) if (o[i] ~ /^signed-by=/) { sub(/^signed-by=/, "", o[i]); print o[i] }
        exit
    }
}
AWK

mirror_uris=
signed_by=
find_debian_entry() {
    local f out=
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f $f && $f != "$SRC_ENTRY_FILE" ]] || continue
        out=$(awk "$AWK_DEB822" "$f") || true
        [[ -n $out ]] && break
    done
    if [[ -z $out ]]; then
        for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
            [[ -f $f ]] || continue
            out=$(awk "$AWK_ONELINE" "$f") || true
            [[ -n $out ]] && break
        done
    fi
    [[ -n $out ]] || return 1
    mirror_uris=$(head -n 1 <<<"$out")
    signed_by=$(tail -n +2 <<<"$out")
    log "using the machine's Debian mirror $mirror_uris (from $f)"
}

# deb822 stanza for deb-src of the given suites; $2 = extra lines (optional).
src_stanza() {
    printf 'Types: deb-src\nURIs: %s\nSuites: %s\nComponents: main\n' "$mirror_uris" "$1"
    if [[ -n $signed_by ]]; then printf 'Signed-By: %s\n' "$signed_by"; fi
    if [[ -n ${2:-} ]]; then printf '%s\n' "$2"; fi
}

# Write $SRC_ENTRY_FILE if missing or different.  Returns 0 if it was (re)written.
write_src_entry() {
    local content
    content="# Added by scripts/build-freethreaded-python.sh (csnapshot) to fetch Debian's
# CPython source package for a free-threaded build.  Source entries only; safe to delete.
$(src_stanza "$SRC_SUITE")"
    if [[ -f $SRC_ENTRY_FILE && "$(cat "$SRC_ENTRY_FILE")" == "$content" ]]; then
        return 1
    fi
    log "adding deb-src entry for $SRC_SUITE: $SRC_ENTRY_FILE"
    printf '%s\n' "$content" >"$SRC_ENTRY_FILE.tmp.$$"
    chmod 644 "$SRC_ENTRY_FILE.tmp.$$"
    mv -f "$SRC_ENTRY_FILE.tmp.$$" "$SRC_ENTRY_FILE"
    return 0
}

# ---------------------------------------------------------------- work area
# The default layout keeps one prefix per version under $cache_root; logs,
# lock and the temporary work folder live next to the prefix(es), on the same
# file system, so the finished installation can be moved into place atomically.
if [[ -n $opt_prefix ]]; then
    base_dir=$(dirname "$opt_prefix")
    stem=.$(basename "$opt_prefix")
    log_file=$opt_prefix.build.log
else
    base_dir=$cache_root
    stem=
    log_file=$cache_root/build.log
fi
mkdir -p "$base_dir"
base_dir=$(cd "$base_dir" && pwd -P)
log_file=$base_dir/${log_file##*/}

exec 9>"$base_dir/$stem.lock"
if ! flock -n 9; then
    log "another build is running in $base_dir; waiting for it ..."
    flock 9
    for v in "${versions[@]}"; do
        p=$(prefix_for "$v")/bin/python${v}t
        if is_free_threaded "$p"; then
            log "the other build produced $p; reusing it"
            printf '%s\n' "$p"
            exit 0
        fi
    done
fi

work=$(mktemp -d "$base_dir/$stem.work.XXXXXX")
cleanup() { [[ -n ${work:-} && -d $work ]] && rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
: >"$log_file"
log "log file: $log_file"

# A prefix that exists and is not ours must not be replaced.
check_prefix_usable() {
    local prefix=$1
    [[ -e $prefix ]] || return 0
    [[ -d $prefix ]] || die 4 "prefix $prefix exists and is not a directory"
    if [[ -z "$(ls -A "$prefix")" || -f $prefix/.csnapshot-ft-build ]]; then return 0; fi
    die 4 "prefix $prefix exists, is not empty and was not made by this script; refusing to replace it." \
        "Choose another --prefix or remove it."
}

# ---------------------------------------------------------------- fetching
attempts=() # human-readable record of what was tried
orig_tarball=
updated_system=0

# Run apt-get with its output appended to the log; $1 = label for the log.
# $apt_mark = number of log lines before the call (see last_apt_error).
apt_mark=0
apt_logged() {
    local label=$1
    shift
    apt_mark=$(wc -l <"$log_file")
    printf '\n===== %s: apt-get %s\n' "$label" "$*" >>"$log_file"
    apt-get "$@" >>"$log_file" 2>&1
}

# The most telling apt error of the latest apt call (the line about the
# orig tarball if there is one), tidied up.
last_apt_error() {
    local errs e
    errs=$(tail -n +"$((apt_mark + 1))" "$log_file" | grep -E '^E: ' |
        grep -v -e 'Failed to fetch some archives' -e 'Some index files failed' |
        sed -e 's/ \[IP: [^]]*\]//' -e 's/^E: //' -e 's/  */ /g') || true
    e=$(grep 'orig\.tar' <<<"$errs" | tail -n 1) || true
    [[ -n $e ]] || e=$(tail -n 1 <<<"$errs")
    printf '%s' "${e:-unknown error (see $log_file)}"
}

# try_fetch PKG SUITE APT_OPTS... : download the source package into a fresh
# folder under $work; on success set $orig_tarball.
try_fetch() {
    local pkg=$1 suite=$2
    shift 2
    local dir=$work/src-$pkg-$suite f
    rm -rf "$dir"
    mkdir -p "$dir"
    apt_mark=$(wc -l <"$log_file")
    (cd "$dir" && apt_logged "fetch $pkg/$suite" "$@" source --download-only "$pkg/$suite") || true
    # apt only keeps files whose hashes match the (signed) index, so a present
    # orig tarball is good even if another file of the package failed.
    for f in "$dir/${pkg}_"*.orig.tar.*; do
        [[ -f $f && $f != *.asc ]] || continue
        orig_tarball=$f
        return 0
    done
    return 1
}

# Private, throw-away apt configuration for suites not in $SRC_ENTRY_FILE
# (testing/unstable).  Nothing is written to /etc/apt or /var/lib/apt.
private_apt_opts=()
setup_private_apt() {
    local suites=$1 d=$work/apt
    mkdir -p "$d/lists/partial" "$d/parts"
    # Check-Valid-Until: no -- frozen/snapshot mirrors serve testing/unstable
    # Release files whose Valid-Until lies in the past; signatures and hashes
    # are still verified.  This only affects this private configuration.
    src_stanza "$suites" "Check-Valid-Until: no" >"$d/private.sources"
    private_apt_opts=(
        -o "Dir::Etc::SourceList=$d/private.sources"
        -o "Dir::Etc::SourceParts=$d/parts"
        -o "Dir::State::Lists=$d/lists"
        -o "Dir::Cache::pkgcache="
        -o "Dir::Cache::srcpkgcache="
    )
    log "reading source indexes for $suites (private apt configuration) ..."
    apt_logged "update (private: $suites)" "${private_apt_opts[@]}" update ||
        log "apt-get update for $suites reported errors: $(last_apt_error)"
}

system_update() {
    log "apt-get update for $SRC_ENTRY_FILE ..."
    updated_system=1
    mkdir -p "$work/no-parts"
    apt_logged "update ($SRC_ENTRY_FILE)" \
        -o "Dir::Etc::SourceList=$SRC_ENTRY_FILE" -o "Dir::Etc::SourceParts=$work/no-parts" \
        -o "APT::Get::List-Cleanup=0" update ||
        log "apt-get update reported errors: $(last_apt_error)"
}

fetch_version() {
    local v=$1 pkg=python$1 suite
    local -a suites
    case $v in
    3.14) suites=(forky sid "$SRC_SUITE") ;;
    *) suites=("$SRC_SUITE") ;;
    esac
    for suite in "${suites[@]}"; do
        log "fetching source for $pkg from $suite ..."
        if [[ $suite == "$SRC_SUITE" ]]; then
            if try_fetch "$pkg" "$suite"; then return 0; fi
            if [[ $updated_system == 0 ]]; then
                log "  not found with the current package lists: $(last_apt_error)"
                system_update
                if try_fetch "$pkg" "$suite"; then return 0; fi
            fi
        else
            if [[ ${#private_apt_opts[@]} == 0 ]]; then setup_private_apt "forky sid"; fi
            if try_fetch "$pkg" "$suite" "${private_apt_opts[@]}"; then return 0; fi
        fi
        attempts+=("$pkg from $suite: $(last_apt_error)")
        log "  not available: $(last_apt_error)"
    done
    return 1
}

version=
if [[ $opt_tsan == 1 ]]; then
    # --tsan: the tarball kept by an earlier build (normal or TSan), if any.
    for v in "${versions[@]}"; do
        for f in "$src_cache/python${v}_"*.orig.tar.*; do
            [[ -f $f && $f != *.asc ]] || continue
            check_prefix_usable "$(prefix_for "$v")"
            orig_tarball=$f
            version=$v
            log "reusing the cached source tarball $f"
            break 2
        done
    done
fi

if [[ -z $version ]]; then
find_debian_entry ||
    die 3 "no Debian entry found in /etc/apt/sources.list or /etc/apt/sources.list.d/*.sources;" \
        "cannot fetch Debian's CPython source package. Set CSNAPSHOT_FT_PYTHON to an existing" \
        "free-threaded interpreter instead."
if write_src_entry; then system_update; fi

for v in "${versions[@]}"; do
    check_prefix_usable "$(prefix_for "$v")"
    if fetch_version "$v"; then
        version=$v
        break
    fi
done

if [[ -z $version ]]; then
    {
        printf '%s: error: could not fetch the CPython source from the Debian mirror %s.\n' "$PROG" "$mirror_uris"
        printf 'Tried:\n'
        printf '  - %s\n' "${attempts[@]}"
        printf 'What you can do:\n'
        printf '  - set CSNAPSHOT_FT_PYTHON to an existing free-threaded interpreter (e.g. python3.13t), or\n'
        printf '  - check network access to the mirror and re-run; full apt output: %s\n' "$log_file"
    } >&2
    exit 3
fi
# Keep a copy of the tarball for later builds (--tsan); best effort.
if mkdir -p "$src_cache" 2>/dev/null; then
    rm -f "$src_cache/python${version}_"*.orig.tar.* 2>/dev/null || true
    cp "$orig_tarball" "$src_cache/" 2>/dev/null ||
        log "warning: could not keep a copy of $(basename "$orig_tarball") in $src_cache"
fi
fi # [[ -z $version ]]

# ---------------------------------------------------------------- building
prefix=$(prefix_for "$version")
full_version=$(basename "$orig_tarball")
full_version=${full_version#python"${version}"_}
full_version=${full_version%%.orig.tar.*}
log "got $(basename "$orig_tarball") ($(du -h "$orig_tarball" | cut -f1))"
[[ $full_version == "$version".* ]] ||
    die 4 "unexpected upstream version '$full_version' in $(basename "$orig_tarball")"

build_failed() {
    {
        printf '%s: error: %s failed for Python %s (%s).\n' "$PROG" "$1" "$full_version" "$flavour"
        printf -- '--- last lines of %s:\n' "$log_file"
        tail -n 25 "$log_file" | sed 's/^/    /'
        printf 'What you can do: read the log above; or set CSNAPSHOT_FT_PYTHON to an existing free-threaded interpreter.\n'
    } >&2
    exit 4
}

start=$SECONDS
log "unpacking $(basename "$orig_tarball") ..."
mkdir -p "$work/build"
tar -xf "$orig_tarball" -C "$work/build" >>"$log_file" 2>&1 || build_failed "unpacking"
srcdir=$(find "$work/build" -mindepth 2 -maxdepth 2 -name configure -printf '%h\n' -quit)
[[ -n $srcdir ]] || build_failed "locating ./configure in the tarball"

log "configuring (--disable-gil ${configure_extra[*]:+${configure_extra[*]} }--prefix=$prefix) ..."
printf '\n===== configure\n' >>"$log_file"
(cd "$srcdir" && ./configure --disable-gil ${configure_extra[@]+"${configure_extra[@]}"} --prefix="$prefix") >>"$log_file" 2>&1 ||
    build_failed "./configure"

log "building with $opt_jobs jobs (about 5 minutes on 2 cores) ..."
printf '\n===== make -j%s\n' "$opt_jobs" >>"$log_file"
make -C "$srcdir" -j"$opt_jobs" >>"$log_file" 2>&1 || build_failed "make"

log "installing into a staging folder ..."
stage=$work/stage
printf '\n===== make install DESTDIR=%s\n' "$stage" >>"$log_file"
make -C "$srcdir" install DESTDIR="$stage" >>"$log_file" 2>&1 || build_failed "make install"

staged=$stage$prefix
ft=$staged/bin/python${version}t
log "verifying the staged interpreter ..."
if ! is_free_threaded "$ft"; then
    printf '\n===== verification of %s\n' "$ft" >>"$log_file"
    "$ft" -I -c 'import sys, sysconfig; print(sys.version, sysconfig.get_config_var("Py_GIL_DISABLED"), sys._is_gil_enabled())' \
        >>"$log_file" 2>&1 || true
    build_failed "verification (Py_GIL_DISABLED == 1 and sys._is_gil_enabled() is False)"
fi
printf 'python %s (%s) built by %s on %s from %s (Debian %s)\n' \
    "$full_version" "$flavour" "$PROG" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(basename "$orig_tarball")" "${mirror_uris:-mirror, cached tarball}" \
    >"$staged/.csnapshot-ft-build"
cp "$log_file" "$staged/.csnapshot-ft-build.log"

# Move into place (same file system => rename).  An old, broken installation
# made by this script is moved into the work folder and deleted with it.
check_prefix_usable "$prefix"
if [[ -e $prefix ]]; then mv "$prefix" "$work/old-prefix"; fi
mkdir -p "$(dirname "$prefix")"
mv "$staged" "$prefix"

ft=$prefix/bin/python${version}t
is_free_threaded "$ft" || build_failed "verification after moving into $prefix"
elapsed=$((SECONDS - start))
log "built Python $full_version ($flavour) in $((elapsed / 60))m$((elapsed % 60))s: $ft"
printf '%s\n' "$ft"
