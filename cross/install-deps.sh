#!/usr/bin/env bash
# Install everything the cross builds, QEMU tests and packaging need.
#
# Idempotent: each step checks whether its result is already there and skips.
# Runs as root on Debian 12 (bookworm) x86_64. Recipe: shared/CROSS.md.
#
#   cross/install-deps.sh            # install what is missing
#   FORCE_APT=1 cross/install-deps.sh  # re-run apt-get even if all is present
#
# What it installs:
#   apt:  rustc-web cargo-web rust-web-src (Rust 1.96 from bookworm-security,
#         with std source for -Zbuild-std), qemu-user-static (runners),
#         time (peak RSS), file, python3/python3-pip (only if python3 -m pip fails)
#   rustup: toolchain "deb" linked to /usr (only if rustup exists)
#   PyPI: ziglang==0.17.1 cargo-zigbuild==0.24.0
set -euo pipefail

ZIGLANG_VERSION=0.17.1
CARGO_ZIGBUILD_VERSION=0.24.0
APT_PACKAGES=(rustc-web cargo-web rust-web-src qemu-user-static time file)

log() { printf '[install-deps] %s\n' "$*" >&2; }
die() { printf '[install-deps] ERROR: %s\n' "$*" >&2; exit 1; }

SUDO=
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "run as root (or install sudo)"
    SUDO=sudo
fi

# ---------------------------------------------------------------- apt
missing=()
# python3 + pip for the PyPI packages (a pyenv/venv python with pip is fine).
if ! command -v python3 >/dev/null; then
    APT_PACKAGES+=(python3 python3-pip)
elif ! python3 -m pip --version >/dev/null 2>&1; then
    APT_PACKAGES+=(python3-pip)
fi
for p in "${APT_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$p")
    fi
done
# Debian's rust std source must be where -Zbuild-std looks for it.
[ -d /usr/lib/rustlib/src/rust/library ] || { [[ " ${missing[*]-} " == *" rust-web-src "* ]] || missing+=(rust-web-src); }

if [ "${#missing[@]}" -gt 0 ] || [ "${FORCE_APT:-0}" = 1 ]; then
    log "apt: installing ${missing[*]:-${APT_PACKAGES[*]}}"
    export DEBIAN_FRONTEND=noninteractive
    # An apt clean-up hook on these machines can delete downloaded .debs
    # between dpkg batches ("cannot access archive"): a plain retry works.
    ok=0
    for try in 1 2 3; do
        if $SUDO apt-get update -qq && \
           $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]:-${APT_PACKAGES[@]}}"; then
            ok=1; break
        fi
        log "apt-get failed (try $try/3), retrying in 5 s"
        sleep 5
    done
    [ "$ok" = 1 ] || die "apt-get install failed 3 times"
else
    log "apt: all of ${APT_PACKAGES[*]} already installed"
fi

/usr/bin/rustc --version 2>/dev/null | grep -q '^rustc 1\.9[6-9]\|^rustc 1\.[1-9][0-9][0-9]' \
    || die "/usr/bin/rustc is not Debian's rustc-web >= 1.96: $(/usr/bin/rustc --version 2>&1)"
log "Debian rustc: $(/usr/bin/rustc --version)"

# ---------------------------------------------------------------- rustup
# rustup's own toolchain is first on PATH; its compiler does not match the
# std source in /usr/lib/rustlib/src. Register Debian's as toolchain "deb"
# and select it with RUSTUP_TOOLCHAIN=deb for every cross step.
if command -v rustup >/dev/null; then
    if rustup toolchain list | grep -q '^deb\b'; then
        log "rustup: toolchain 'deb' already linked"
    else
        log "rustup: linking toolchain 'deb' -> /usr"
        rustup toolchain link deb /usr
    fi
    RUSTUP_TOOLCHAIN=deb rustc --version | grep -q "$(/usr/bin/rustc --version | awk '{print $2}')" \
        || die "RUSTUP_TOOLCHAIN=deb does not select /usr/bin/rustc"
else
    log "rustup: not installed; /usr/bin/cargo (Debian's) is used directly"
fi

# ---------------------------------------------------------------- PyPI
PY=$(command -v python3) || die "python3 not found"
pip_args=(install --quiet --disable-pip-version-check)
# Debian's system python is "externally managed" (PEP 668); a pyenv/venv is not.
if "$PY" -c 'import sys,sysconfig,os; sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_path("stdlib"),"EXTERNALLY-MANAGED")) and sys.prefix==sys.base_prefix else 1)'; then
    pip_args+=(--break-system-packages)
    # --user-less root install lands in /usr/local/bin: already on PATH
fi
have_py_pkg() {
    local out
    out=$("$PY" -m pip show "$1" 2>/dev/null) || return 1
    grep -qx "Version: $2" <<<"$out"
}
want=()
have_py_pkg ziglang "$ZIGLANG_VERSION" || want+=("ziglang==$ZIGLANG_VERSION")
have_py_pkg cargo-zigbuild "$CARGO_ZIGBUILD_VERSION" || want+=("cargo-zigbuild==$CARGO_ZIGBUILD_VERSION")
if [ "${#want[@]}" -gt 0 ]; then
    log "pip ($PY): installing ${want[*]}"
    ok=0
    for try in 1 2 3; do
        if "$PY" -m pip "${pip_args[@]}" "${want[@]}"; then ok=1; break; fi
        log "pip failed (try $try/3), retrying in 5 s"; sleep 5
    done
    [ "$ok" = 1 ] || die "pip install failed 3 times"
    command -v pyenv >/dev/null && pyenv rehash 2>/dev/null || true
else
    log "pip: ziglang $ZIGLANG_VERSION and cargo-zigbuild $CARGO_ZIGBUILD_VERSION already installed"
fi

scripts_dir=$("$PY" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
if ! command -v cargo-zigbuild >/dev/null; then
    [ -x "$scripts_dir/cargo-zigbuild" ] || die "cargo-zigbuild not found (looked in PATH and $scripts_dir)"
    log "note: cargo-zigbuild is in $scripts_dir, not on PATH; the cross/ scripts add it"
fi
"$PY" -m ziglang version >/dev/null || die "python3 -m ziglang does not run"

# ---------------------------------------------------------------- checks
for q in qemu-arm-static qemu-aarch64-static qemu-mipsel-static; do
    command -v "$q" >/dev/null || die "$q missing"
done
[ -x /usr/bin/time ] || die "/usr/bin/time missing"
log "OK: $(/usr/bin/rustc --version), zig $("$PY" -m ziglang version), $(PATH="$scripts_dir:$PATH" cargo-zigbuild --version 2>/dev/null | head -1), $(qemu-arm-static --version | head -1)"
