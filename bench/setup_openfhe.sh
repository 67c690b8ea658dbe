#!/usr/bin/env bash
# Create bench/.venv with the OpenFHE Python wheel (openfhe on PyPI).
#
# Facts about the wheels (checked for openfhe 1.6.1 on PyPI):
#   * The wheels are tagged "py3-none-any" but each one contains a compiled
#     extension for ONE CPython version, built on one Ubuntu release:
#       openfhe==1.6.1.0.22.4  ->  openfhe.cpython-310-*.so, Ubuntu 22.04 (glibc 2.35,
#                                  libstdc++ GLIBCXX_3.4.30)  -> needs Python 3.10
#       openfhe==1.6.1.0.24.4  ->  openfhe.cpython-312-*.so, Ubuntu 24.04 (needs
#                                  libstdc++ GLIBCXX_3.4.32)   -> needs Python 3.12
#     pip happily installs them into any Python >= 3.10, but `import openfhe`
#     then fails ("No module named 'openfhe.openfhe'") unless the minor version matches.
#   * So the interpreter is picked by what the wheel was built for; on Debian 12 /
#     Ubuntu 22.04 that is Python 3.10 + the ".22.4" wheel.
#
# Environment overrides:
#   PYTHON=/path/to/python   try this interpreter first
#   OPENFHE_PIP_SPEC=...     pip requirement to install instead of the per-Python default
#   FORCE=1                  recreate the venv even if it already works
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv"
OPENFHE_BASE="1.6.1"

log() { echo "[setup_openfhe] $*" >&2; }

# requirement for a given "major.minor"
spec_for() {
    if [[ -n "${OPENFHE_PIP_SPEC:-}" ]]; then echo "$OPENFHE_PIP_SPEC"; return 0; fi
    case "$1" in
        3.10) echo "openfhe==${OPENFHE_BASE}.0.22.4" ;;
        3.12) echo "openfhe==${OPENFHE_BASE}.0.24.4" ;;
        *) return 1 ;;
    esac
}

check_venv() {
    # prints "<python version> openfhe <version>" when the venv works
    [[ -x "$VENV/bin/python" ]] || return 1
    "$VENV/bin/python" - <<'EOF' 2>/dev/null
import sys, openfhe
print(sys.version.split()[0], "openfhe", openfhe.__version__)
EOF
}

if [[ "${FORCE:-0}" != "1" ]] && out="$(check_venv)"; then
    log "already set up: $VENV"
    echo "interpreter: $VENV/bin/python (Python ${out% openfhe*})"
    echo "openfhe: ${out##* }"
    exit 0
fi

# ---- collect candidate interpreters (3.10 first: that is what the 22.04 wheel needs)
cands=()
[[ -n "${PYTHON:-}" ]] && cands+=("$PYTHON")
for v in 3.10 3.12; do
    command -v "python$v" >/dev/null 2>&1 && cands+=("$(command -v "python$v")")
    # pyenv shims only work for the globally selected versions; look at the installs directly
    if command -v pyenv >/dev/null 2>&1; then
        root="$(pyenv root 2>/dev/null || true)"
        for d in "$root"/versions/"$v".*; do
            [[ -x "$d/bin/python$v" ]] && cands+=("$d/bin/python$v")
        done
    fi
    for d in "$HOME"/.pyenv/versions/"$v".* /usr/bin /usr/local/bin; do
        [[ -x "$d/bin/python$v" ]] && cands+=("$d/bin/python$v")
        [[ -x "$d/python$v" ]] && cands+=("$d/python$v")
    done
done
for p in python3.11 python3; do
    command -v "$p" >/dev/null 2>&1 && cands+=("$(command -v "$p")")
done

tried=()
seen=""
for py in "${cands[@]}"; do
    # skip duplicates and broken shims
    real="$(readlink -f "$py" 2>/dev/null || echo "$py")"
    [[ " $seen " == *" $real "* ]] && continue
    seen="$seen $real"
    ver="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" || {
        tried+=("$py: does not run"); continue; }
    if ! spec="$(spec_for "$ver")"; then
        tried+=("$py (Python $ver): no openfhe ${OPENFHE_BASE} wheel is built for this Python")
        continue
    fi
    if ! "$py" -c 'import venv, ensurepip' 2>/dev/null; then
        tried+=("$py (Python $ver): no venv/ensurepip module"); continue
    fi
    log "trying $py (Python $ver) with $spec"
    rm -rf "$VENV"
    if ! "$py" -m venv "$VENV" >&2; then
        tried+=("$py (Python $ver): venv creation failed"); continue
    fi
    if ! "$VENV/bin/python" -m pip install --disable-pip-version-check -q "$spec" >&2; then
        tried+=("$py (Python $ver): pip install $spec failed"); rm -rf "$VENV"; continue
    fi
    if out="$(check_venv)"; then
        log "ok"
        echo "interpreter: $VENV/bin/python (Python ${out% openfhe*}, from $py)"
        echo "openfhe: ${out##* } (pip: $spec)"
        exit 0
    fi
    err="$("$VENV/bin/python" -c 'import openfhe' 2>&1 | tail -1 || true)"
    tried+=("$py (Python $ver): installed $spec but import failed: $err")
    rm -rf "$VENV"
done

{
    echo "[setup_openfhe] FAILED: no interpreter could run the OpenFHE wheel."
    for t in "${tried[@]}"; do echo "  - $t"; done
    echo "Needs: CPython 3.10 with venv (for openfhe==${OPENFHE_BASE}.0.22.4, Ubuntu-22.04-class"
    echo "glibc/libstdc++), or CPython 3.12 on a system with libstdc++ >= GLIBCXX_3.4.32"
    echo "(openfhe==${OPENFHE_BASE}.0.24.4). E.g. 'pyenv install 3.10' then rerun, or"
    echo "PYTHON=/path/to/python3.10 $0"
} >&2
exit 1
