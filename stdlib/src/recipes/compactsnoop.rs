//! The `compactsnoop` recipe's source, generated from its options (`-T` timestamps, `-K`
//! kernel stacks, `-e` extended columns) so that `mmql show compactsnoop -e -K` prints exactly
//! the script `mmql run compactsnoop -e -K` runs. Options in, mmql source text out.
//!
//! `-p PID` and `-d SECONDS` are not generated: they are `mmql run`'s own options, which every
//! recipe takes (`-p` filters in the kernel, as bcc's does).

use super::RecipeOptions;

/// What the script always says about itself; the option-specific lines follow it.
const HEADER: &str = "\
# compactsnoop: trace zone compactions: who compacted which zone, for which order, how long, and the outcome
#
# Reference: bcc's compactsnoop (examples in compactsnoop-examples.txt): columns COMM PID NODE
# ZONE ORDER MODE LAT(ms) STATUS, -T timestamps, -p PID, -d SECONDS, -K stacks, -e extended.
# Changed for this kernel, and how mmql gets each column without kprobes:
#   - NODE and ZONE: compaction tracepoints carry only the zone's first pfn (`zone_start`);
#     zone_node() and zone_name() find the zone with that start_pfn in /proc/zoneinfo.
#   - ORDER: compaction:mm_compaction_finished carries the order (-1 for a full compaction
#     from /proc/sys/vm/compact_memory or proactive compaction); it is saved per thread and
#     read when the compaction ends.
#   - MODE: the begin event's `sync` (SYNC, or ASYNC; bcc's SYNC_LIGHT shows as SYNC).
#   - STATUS: names from this kernel's format file (`complete`, `success`, `partial_skipped`,
#     `deferred`, `contended`, `skipped`, ...): the bcc tables for CentOS 7.6 and 4.7+ do not
#     apply, and `partial` no longer exists.
#   - -e: FRAGIDX is the zone's fragmentation index for ORDER (debugfs extfrag_index, or
#     computed from /proc/buddyinfo the way the kernel does; `-` for order -1); MIN LOW HIGH
#     FREE are the zone's watermarks and free pages from /proc/zoneinfo. All are read when the
#     line prints, a few milliseconds after the event.
#   - -T: TIME(s) is seconds since the first compaction traced, as in bcc (which starts from
#     its first event too, but divides nanoseconds by 10^6, so its \"seconds\" are really
#     milliseconds; mmql prints seconds, with nanoseconds after the point).
#   - -K: the kernel stack when the compaction ended.
#   - -p PID and -d SECONDS are `mmql run` options: `mmql run compactsnoop -p 1234 -d 10`.
# Events: compaction:mm_compaction_begin/_end (a span per thread), compaction:mm_compaction_finished.
# Output: one line per zone compacted. Frequent lines for a latency-critical task mean it
# stalls on fragmentation (compact_stall in /proc/vmstat counts the same thing).
";

/// The generated script for these options.
pub fn source(o: &RecipeOptions) -> String {
    let mut s = String::from(HEADER);
    s.push_str(&format!(
        "# Options of this version: -T {}, -K {}, -e {}.\n\n",
        on_off(o.timestamps),
        on_off(o.kernel_stack),
        on_off(o.extended)
    ));
    // Column layout shared by the header line and the per-event line.
    let mut head_fmt = String::new();
    let mut head_args: Vec<&str> = Vec::new();
    let mut line_fmt = String::new();
    let mut line_args: Vec<&str> = Vec::new();
    let mut col = |hf: &str, ha: &'static str, lf: &str, la: &'static str| {
        head_fmt.push_str(hf);
        head_args.push(ha);
        line_fmt.push_str(lf);
        line_args.push(la);
    };
    if o.timestamps {
        // `t`: ns since the first compaction traced (set below, before the line prints).
        col(
            "%-14s ",
            "\"TIME(s)\"",
            "%4d.%09d ",
            "t / 1000000000, t % 1000000000",
        );
    }
    col("%-16s ", "\"COMM\"", "%-16s ", "comm");
    col("%-7s ", "\"PID\"", "%-7d ", "pid");
    col("%-4s ", "\"NODE\"", "%-4d ", "zone_node(zone_start)");
    col("%-11s ", "\"ZONE\"", "%-11s ", "zone_name(zone_start)");
    col("%-5s ", "\"ORDER\"", "%-5d ", "@order[tid]");
    col(
        "%-5s ",
        "\"MODE\"",
        "%-5s ",
        "begin.sync ? \"SYNC\" : \"ASYNC\"",
    );
    if o.extended {
        col(
            "%-7s ",
            "\"FRAGIDX\"",
            "%-7s ",
            "fragindex(zone_start, @order[tid])",
        );
        col("%-7s ", "\"MIN\"", "%-7d ", "zoneinfo(zone_start, \"min\")");
        col("%-7s ", "\"LOW\"", "%-7d ", "zoneinfo(zone_start, \"low\")");
        col(
            "%-7s ",
            "\"HIGH\"",
            "%-7d ",
            "zoneinfo(zone_start, \"high\")",
        );
        col(
            "%-8s ",
            "\"FREE\"",
            "%-8d ",
            "zoneinfo(zone_start, \"free\")",
        );
    }
    head_fmt.push_str("%10s %s\\n");
    head_args.extend(["\"LAT(ms)\"", "\"STATUS\""]);
    line_fmt.push_str("%6d.%03d %s\\n");
    line_args.extend(["duration / 1000000", "duration / 1000 % 1000", "status"]);

    s.push_str("on begin {\n");
    s.push_str(&format!(
        "    printf(\"{head_fmt}\", {})\n",
        head_args.join(", ")
    ));
    s.push_str("}\n");
    s.push_str("on compaction:mm_compaction_finished {\n");
    s.push_str("    # The order of the compaction running in this thread (-1: the whole zone).\n");
    s.push_str("    @order[tid] = order\n");
    s.push_str("}\n");
    s.push_str("on compaction:mm_compaction {\n");
    if o.timestamps {
        s.push_str("    # TIME(s) counts from the first compaction traced, as bcc's does.\n");
        s.push_str("    let now = nsecs\n");
        s.push_str("    if @t0 == 0 { @t0 = now }\n");
        s.push_str("    let t = now - @t0\n");
    }
    s.push_str(&format!(
        "    printf(\"{line_fmt}\", {})\n",
        line_args.join(", ")
    ));
    if o.kernel_stack {
        // The stack text starts and ends with a newline: it sits under the line as a block.
        s.push_str("    printf(\"%s\", kstack)\n");
    }
    s.push_str("    delete(@order[tid])\n");
    s.push_str("}\n");
    if o.timestamps {
        // The start time is bookkeeping, not a result: keep it out of the exit dump.
        s.push_str("on end { clear(@t0) }\n");
    }
    s
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_follow_options() {
        let plain = source(&RecipeOptions::default());
        assert!(plain.contains(
            "\"COMM\", \"PID\", \"NODE\", \"ZONE\", \"ORDER\", \"MODE\", \"LAT(ms)\", \"STATUS\""
        ));
        assert!(
            !plain.contains("strftime")
                && !plain.contains("kstack")
                && !plain.contains("fragindex")
        );
        let all = source(&RecipeOptions {
            timestamps: true,
            kernel_stack: true,
            extended: true,
        });
        assert!(all.contains("\"TIME(s)\", \"COMM\""));
        assert!(all.contains("\"%4d.%09d %-16s ") && all.contains("let t = now - @t0"));
        assert!(all.contains("\"FRAGIDX\", \"MIN\", \"LOW\", \"HIGH\", \"FREE\", \"LAT(ms)\""));
        assert!(all.contains("printf(\"%s\", kstack)"));
        assert!(all.contains("-T on, -K on, -e on"));
    }

    #[test]
    fn header_and_line_have_as_many_conversions_as_arguments() {
        let all = source(&RecipeOptions {
            timestamps: true,
            kernel_stack: false,
            extended: true,
        });
        for line in all
            .lines()
            .filter(|l| l.trim_start().starts_with("printf(\""))
        {
            let (fmt, args) = line.split_once("\", ").expect("printf with arguments");
            let convs = fmt.matches('%').count() - 2 * fmt.matches("%%").count();
            // Arguments are separated by ", " outside strings; none of ours nest commas
            // except the two-argument functions, which are counted once.
            let nested = args.matches("(zone_start, ").count() + args.matches("\", nsecs)").count();
            let n = args.matches(", ").count() + 1 - nested;
            assert_eq!(convs, n, "{line}");
        }
    }
}
