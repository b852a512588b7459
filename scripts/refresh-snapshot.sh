#!/bin/sh
# Snapshot refresh: the running kernel's tracefs format files and BTF in,
# stdlib/snapshot/{events/<category>/<name>/format, btf-enums.txt, KERNEL} out.
#
# The snapshot is what mmql falls back to when tracefs cannot be read, and what tests check
# known facts against. Run as root on the kernel to snapshot, then commit stdlib/snapshot.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
tracefs=${TRACEFS:-/sys/kernel/tracing}
btf=${BTF:-/sys/kernel/btf/vmlinux}
dest="$root/stdlib/snapshot"

# Whole mm-related categories; any that this kernel lacks are skipped.
categories="kmem vmscan compaction huge_memory oom migrate thp memcg mmap mmap_lock
page_isolation percpu vmalloc pagemap filemap ksm damon hugetlbfs writeback exceptions"
# Single events from other categories that mm scripts use (process lifetime).
single_events="sched:sched_process_exit sched:sched_process_fork sched:sched_process_exec
sched:sched_process_free"

if [ ! -d "$tracefs/events" ]; then
    echo "refresh-snapshot: $tracefs/events not readable (mount -t tracefs nodev $tracefs?)" >&2
    exit 1
fi

# Build into a temporary directory and swap at the end, so a failure leaves the old snapshot.
tmp=$(mktemp -d "$root/stdlib/.snapshot.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/events"

copy_event() { # category name
    src="$tracefs/events/$1/$2/format"
    [ -r "$src" ] || return 0
    mkdir -p "$tmp/events/$1/$2"
    cat "$src" > "$tmp/events/$1/$2/format"
}

for cat in $categories; do
    [ -d "$tracefs/events/$cat" ] || { echo "refresh-snapshot: no category $cat, skipped" >&2; continue; }
    for dir in "$tracefs/events/$cat"/*/; do
        copy_event "$cat" "$(basename "$dir")"
    done
done
for ev in $single_events; do
    copy_event "${ev%%:*}" "${ev#*:}"
done

cd "$root"
cargo run -q -p mmql-compiler --example dump-btf-enums -- "$btf" > "$tmp/btf-enums.txt"
uname -r > "$tmp/KERNEL"

chmod 755 "$tmp"
rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
echo "refresh-snapshot: $(find "$dest/events" -name format | wc -l) format files, kernel $(cat "$dest/KERNEL")"
