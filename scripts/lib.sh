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
# kernel_key [debug]: the debug variant also depends on kernel/config.debug.
kernel_key() {
	{
		echo "$LINUX_PKG_VERSION"
		cat "$TOP/kernel/config.fragment" "$TOP/scripts/kernel-build"
		[ "${1:-}" != debug ] || cat "$TOP/kernel/config.debug" "$TOP"/kernel/debug-patches/*.patch
		rustc --version
		bindgen --version 2>/dev/null
	} | sha256sum | cut -c1-16
}

kernel_src_dir() { echo "$CACHE/src/linux-$LINUX_PKG_VERSION"; }
# kernel_build_dir [debug]: the normal build, or the debug variant's.
kernel_build_dir() {
	if [ "${1:-}" = debug ]; then echo "$CACHE/kbuild-debug-$(kernel_key debug)"
	else echo "$CACHE/kbuild-$(kernel_key)"; fi
}

# ktap_count LOG LABEL [SUITE...]: counts the KTAP results in LOG, a rig
# job.log: selftests/run prints "# suite: NAME" then the suite's document
# ("KTAP version 1", the plan "1..N", results). Sets ktap_passed, ktap_failed
# and ktap_skipped, and ktap_skips ("suite S<TAB>NAME" per skip, for the
# expected-skips list). "ok N NAME # SKIP REASON" is a skip, "not ok" a failure;
# a document with fewer (or more) results than its plan, or no plan, and a
# SUITE expected but absent, count one failure each, with a log line. Only
# top-level lines count: "#" diagnostics and indented (nested) lines do not.
# shellcheck disable=SC2034 # ktap_* are the caller's
ktap_count() {
	local log=$1 label=$2 line counts=""
	shift 2
	ktap_passed=0 ktap_failed=0 ktap_skipped=0 ktap_skips=()
	while IFS= read -r line; do
		case "$line" in
		"counts "*) counts=${line#counts } ;;
		"skipped "*) ktap_skips+=("${line#skipped }") ;;
		*) log "test: KTAP ($label): $line" ;;
		esac
	done < <(awk -v expect="$*" '
		function bad(msg) { f++; print msg }
		function open_doc() {
			close_doc(); docs++; open = 1; planned = 0; plan = 0; nres = 0
			doc = pending ? "suite " suite : "KTAP document " docs
			pending = 0
		}
		function end_suite() {
			close_doc()
			if (pending) bad("suite " suite ": no KTAP output")
			pending = 0
		}
		function close_doc() {
			if (!open) return
			open = 0
			if (!planned) bad(doc ": no plan (1..N), " nres " results")
			else if (plan == 0 && nres == 0) { s++; print doc ": skipped as a whole (plan 1..0)"; print "skipped " doc "\t(the whole suite)" }
			else if (nres < plan) bad(doc ": stopped after " nres " of " plan " results")
			else if (nres > plan) bad(doc ": " nres " results, more than its plan 1.." plan)
		}
		BEGIN { n = split(expect, want, " ") }
		/^# suite: / { end_suite(); suite = substr($0, 10); sub(/[ \t]+$/, "", suite); ran[suite] = 1; pending = 1; next }
		/^K?TAP version / { open_doc(); next }
		/^1\.\.[0-9]+/ {
			if (!open) open_doc()
			if (planned) bad(doc ": a second plan")
			planned = 1; plan = substr($1, 4) + 0; next
		}
		/^ok / && $2 ~ /^[0-9]+$/ {
			if (!open) open_doc()
			nres++
			i = index($0, "#")
			if (i && substr($0, i + 1) ~ /^[ \t]*[Ss][Kk][Ii][Pp]/) {
				s++
				name = substr($0, 1, i - 1); sub(/^ok [0-9]+ /, "", name); sub(/[ \t]+$/, "", name)
				print "skipped " doc "\t" name
			} else p++
			next
		}
		/^not ok / && $3 ~ /^[0-9]+$/ {
			if (!open) open_doc()
			nres++; f++; next
		}
		END {
			end_suite()
			for (i = 1; i <= n; i++) if (!(want[i] in ran)) bad("suite " want[i] ": did not run")
			printf "counts %d %d %d\n", p, f, s
		}' "$log")
	if [ -z "$counts" ]; then
		log "test: KTAP ($label): cannot read $log"
		ktap_failed=1
		return
	fi
	read -r ktap_passed ktap_failed ktap_skipped <<<"$counts"
}
