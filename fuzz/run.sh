#!/usr/bin/env bash
# fuzz/run.sh: builds mmql's libFuzzer targets, seeds their corpora from the golden cases, the
# language reference's examples and the format-file snapshot, and runs each for a bounded time.
# Output: libFuzzer's log per target; crashing inputs land in fuzz/artifacts/<target>/ and the
# script exits non-zero when any target crashed.
#
#   fuzz/run.sh                 every target for 60 s (cargo-fuzz + ASan when installed)
#   fuzz/run.sh 600 check       one target for 10 minutes
#   fuzz/run.sh --smoke         CI: plain `cargo build` (no cargo-fuzz, no nightly), 3 s each
#
# cargo-fuzz needs nightly flags (-Zsanitizer); on the stable toolchain RUSTC_BOOTSTRAP=1
# unlocks them. The coverage instrumentation itself (-Cpasses=sancov-module) is a stable flag,
# which is what lets the smoke build go without cargo-fuzz: only AddressSanitizer is lost.
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd .. && pwd)

mode=full
seconds=60
if [ "${1:-}" = "--smoke" ]; then
    mode=smoke
    seconds=3
    shift
elif [[ "${1:-}" =~ ^[0-9]+$ ]]; then
    seconds=$1
    shift
fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(parse check format compile recording tracedat)

# Corpora: scripts for the three script targets, format files and the BTF table for `format`,
# the bundled sample recordings for `recording`, trace-cmd's files for `tracedat`.
# Rebuilt from the tree every run (cheap), added to whatever libFuzzer saved there before.
seed() {
    local dir=corpus/$1
    mkdir -p "$dir"
    case $1 in
        format)
            find "$root/stdlib/snapshot/events" -name format | while read -r f; do
                cp "$f" "$dir/$(echo "${f#"$root/stdlib/snapshot/events/"}" | tr / _)"
            done
            cp "$root/stdlib/snapshot/btf-enums.txt" "$dir/btf-enums.txt"
            ;;
        recording)
            cp "$root"/stdlib/samples/*.mmqltrace "$dir/"
            ;;
        tracedat)
            # The committed trace-cmd files: version 7 zstd, version 6, version 7 uncompressed.
            cp "$root"/tracedat/tests/fixtures/*.dat "$dir/"
            ;;
        *)
            for f in "$root"/tests/golden/*/*.mmql; do
                cp "$f" "$dir/golden_$(basename "$(dirname "$f")")_$(basename "$f")"
            done
            # Every ```mmql block of the reference, one file each.
            awk -v dir="$dir" '
                /^```mmql/ { n++; out = sprintf("%s/doc_%03d.mmql", dir, n); inblock = 1; next }
                /^```/ { if (inblock) close(out); inblock = 0; next }
                inblock { print > out }
            ' "$root/docs/language.md"
            ;;
    esac
}

if [ "$mode" = full ] && command -v cargo-fuzz >/dev/null; then
    export RUSTC_BOOTSTRAP=1
    cargo fuzz build -O
    bin_dir=target/x86_64-unknown-linux-gnu/release
else
    # --cfg fuzzing matches cargo-fuzz; debug assertions turn overflows into crashes.
    export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
    export CARGO_TARGET_DIR=target/plain
    # An explicit --target keeps RUSTFLAGS off build scripts, which cannot link the sancov
    # hooks (cargo-fuzz does the same).
    host=$(rustc -vV | sed -n 's/^host: //p')
    cargo build --release --quiet --bins --target "$host"
    bin_dir=target/plain/$host/release
fi

status=0
for t in "${targets[@]}"; do
    seed "$t"
    mkdir -p "artifacts/$t"
    echo "== fuzz $t for ${seconds}s"
    # -rss_limit_mb: a leak or an unbounded allocation is a finding too. -timeout: one input
    # may take at most 10 s (the compiler is fast; a hang is a finding).
    if ! "$bin_dir/$t" "corpus/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -dict="$root/fuzz/mmql.dict" -artifact_prefix="artifacts/$t/" -print_final_stats=1 \
        2> "artifacts/$t.log"; then
        status=1
        echo "   CRASH: see fuzz/artifacts/$t.log and fuzz/artifacts/$t/"
    fi
    grep -E 'stat::number_of_executed_runs|Done [0-9]+ runs' "artifacts/$t.log" | tail -2 | sed 's/^/   /'
done
exit "$status"
