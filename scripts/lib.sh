# Shared settings for the project's scripts. Sourced, never executed.
# shellcheck shell=bash

# Pinned inputs. Change one and every cache keyed on it is rebuilt.
LINUX_PKG=linux-source-7.3
LINUX_PKG_VERSION=7.3.4-1~bpo13+1
LINUX_VERSION=7.3.4
BINDGEN_VERSION=0.73.2
XEN_VERSION=4.17
LLVM_VERSION=19

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Expensive artifacts (kernel source and build, rig images) live outside the repo.
CACHE=${XENNET_CACHE:-/var/cache/xen-rust-net}
export LIBCLANG_PATH=/usr/lib/llvm-$LLVM_VERSION/lib
export PATH="$HOME/.cargo/bin:$PATH"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Key for the kernel build: source version + config inputs + toolchain.
kernel_key() {
	{
		echo "$LINUX_PKG_VERSION"
		cat "$TOP/kernel/config.fragment" "$TOP/scripts/kernel-build"
		rustc --version
		bindgen --version 2>/dev/null
	} | sha256sum | cut -c1-16
}

kernel_src_dir() { echo "$CACHE/src/linux-$LINUX_PKG_VERSION"; }
kernel_build_dir() { echo "$CACHE/kbuild-$(kernel_key)"; }
