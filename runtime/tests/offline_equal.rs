//! Same answers offline: a workload held at a gate (`support::Gate`: a shell blocked on its
//! stdin, which then execs the workload in the same process) is traced live by `mmql -p PID`
//! and recorded by `mmql record -p PID`; the gate opens only once every tracer is attached
//! and the workload ends before any stops. Then each script runs on the recording with
//! `--trace`, and its output must equal the live output byte for byte.
//!
//! Where output cannot be equal the comparison masks exactly that field and says why:
//! wall-clock times (`strftime`), and span durations, which the live program measures with its
//! own `ktime_get_ns` calls while the recording holds the recorder's (a few hundred ns apart);
//! for those the count of spans is still compared.

use std::path::Path;
use std::time::Duration;

use mmql_testsupport as support;
use mmql_testsupport::{skip_unless, skip_unless_root_bpf};
use support::cgroup::{require_memcg, MemCgroup};
use support::mmql_run::{mmql_cmd, run_mmql, start_mmql, Finished, Proc};
use support::Gate;

const TIMEOUT: Duration = Duration::from_secs(60);

/// A shell that waits on a FIFO, then execs `cmd` (so the traced pid is the workload's).
/// One comparison: mmql arguments after `-p PID` (live) or `--trace FILE` (offline).
struct Case {
    name: &'static str,
    args: Vec<String>,
    /// Must appear in the live output (the case saw the workload at all).
    expect: &'static str,
    /// Rewrites both outputs before comparing (masks what cannot be equal).
    mask: fn(&str) -> String,
}

fn same(s: &str) -> String {
    s.to_string()
}

fn case(name: &'static str, args: &[&str], expect: &'static str) -> Case {
    Case {
        name,
        args: args.iter().map(|s| s.to_string()).collect(),
        expect,
        mask: same,
    }
}

/// Starts every live case and then the recorder on the gate's pid, runs the workload, stops
/// the recorder and then the live cases, then runs each case offline and compares.
fn compare(tag: &str, gate: Gate, record: &[&str], cases: &[Case]) {
    let pid = gate.pid().to_string();
    let file = std::env::temp_dir().join(format!(
        "mmql-offline-{tag}-{}.mmqltrace",
        std::process::id()
    ));
    let file_s = file.to_string_lossy().to_string();
    let mut rec_args = vec!["record", "-o", &file_s, "-p", &pid];
    rec_args.extend_from_slice(record);
    let live: Vec<Proc> = cases
        .iter()
        .map(|c| {
            let mut a = c.args.clone();
            a.extend(["-p".to_string(), pid.clone()]);
            let refs: Vec<&str> = a.iter().map(String::as_str).collect();
            start_mmql(&refs)
        })
        .collect();
    // The recording's window lies inside every live one: started last, stopped first.
    let mut recorder = Proc::spawn("mmql record", &mut mmql_cmd(&rec_args));
    recorder.wait_for("Recording", TIMEOUT);
    // The workload may end killed (the OOM case): what it did is what the tracers saw.
    let _ = gate.open();
    let rec = recorder.stop();
    let live: Vec<Finished> = live.into_iter().map(Proc::stop).collect();
    rec.expect_code(0, "mmql record");
    assert!(rec.stderr.contains("Recorded"), "{}", rec.stderr);
    for (c, l) in cases.iter().zip(&live) {
        l.expect_code(0, c.name);
        assert!(
            l.stdout.contains(c.expect),
            "{}: live output lacks `{}`:\n{}",
            c.name,
            c.expect,
            l.stdout
        );
        let mut a = vec!["--trace".to_string(), file_s.clone()];
        a.extend(c.args.iter().cloned());
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        let off = run_mmql(&refs, TIMEOUT);
        off.expect_code(0, c.name);
        // A live run also reports the probe runs the kernel skipped, before any filter, while
        // another BPF user held the CPU (most for other processes' events); a recording
        // cannot know them. A skipped event of the traced process would show in the maps.
        let live_out: String = l
            .stdout
            .lines()
            .filter(|line| !line.contains("the kernel skipped them"))
            .map(|line| format!("{line}\n"))
            .collect();
        assert_eq!(
            (c.mask)(&off.stdout),
            (c.mask)(&live_out),
            "{}: offline output (left) differs from live (right)",
            c.name
        );
    }
    let _ = std::fs::remove_file(&file);
}

const AGGREGATIONS: &str = "on kmem:mm_page_alloc {
    @n = count()
    @orders = hist(order)
    @lin = lhist(order, 0, 4, 1)
    @bytes = sum(4096 << order)
    @avg = avg(order)
    @lo = min(order)
    @hi = max(order)
    @st = stats(order)
    @by[comm, migratetype] = count()
    @gfp[gfp_flags] = count()
    @cpus = count()
}
on kmem:mm_page_free { @freed[order] = count() }
on kmem:mm_page_alloc where gfp_flags has __GFP_ZERO { @zeroed = count() }";

#[test]
fn churn_offline_equals_live() {
    skip_unless_root_bpf!();
    let gate = Gate::new("churn --pages 3000 --rounds 2", None);
    let cases = [
        case("aggregations", &["-e", AGGREGATIONS], "@orders"),
        case("aggregations-json", &["-f", "json", "-e", AGGREGATIONS], "\"@by\""),
        case(
            "printf",
            &[
                "-e",
                "on kmem:mm_page_alloc where order == 0 && pfn % 7 == 0 { printf(\"%s %d %s %s %d\\n\", comm, tid == pid, migratetype, gfp_flags, uid) }",
            ],
            "MIGRATE_MOVABLE",
        ),
        case(
            "kstack-and-ksym",
            &[
                "-e",
                "on kmem:mm_page_alloc { @[kstack] = count() } on kmem:kmalloc, kmem:kmem_cache_alloc { @sites[ksym(call_site)] = count() }",
            ],
            "@[",
        ),
        // Only recipes whose `every` period (30 s, 60 s) outlasts every tracer here: each
        // tool's ticks count from its own start, so a recipe that ticks during the run
        // (alloc-free-balance every 1 s, slab-top every 10 s) prints a different number of
        // ticks live and offline, each right for its own start.
        case("recipe-kmalloc-growth", &["run", "kmalloc-growth"], "@"),
        case("recipe-slab-balance", &["run", "slab-balance"], "@"),
        case("recipe-extfrag", &["run", "extfrag"], ""),
    ];
    compare("churn", gate, &["--stacks", "kmem:*"], &cases);
}

/// Masks what two clocks disagree on: the LATENCY column of reclaim lines, the wall-clock
/// time of OOM lines, and the bucket rows of duration histograms (their totals stay).
fn mask_times(s: &str) -> String {
    let mut out = String::new();
    let mut in_lat = false;
    for line in s.lines() {
        if line.starts_with("@latency_us") || line.starts_with("@lat") {
            in_lat = true;
            out.push_str(line.split(':').next().unwrap_or(line));
            out.push('\n');
            continue;
        }
        if in_lat {
            if line.trim().is_empty() {
                in_lat = false;
            } else {
                continue;
            }
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let line = if words.len() >= 6 && words[4] == "ms" {
            let mut w = words.clone();
            w[3] = "LAT";
            w.join(" ")
        } else if line.contains("OOM KILL") {
            line.split_once(' ')
                .map_or(line, |(_, rest)| rest)
                .to_string()
        } else {
            line.to_string()
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[test]
fn memcg_reclaim_and_oom_offline_equals_live() {
    skip_unless_root_bpf!();
    skip_unless!(require_memcg());
    let cg = MemCgroup::create(64 << 20).expect("memory cgroup");
    // 200 MiB of anonymous memory in 64 MiB without swap: memcg reclaim, then an OOM kill.
    let gate = Gate::new("hog --mb 200", Some(&cg));
    let spans = "on vmscan:memcg_reclaim {
    @n[comm] = count()
    @pages = sum(nr_reclaimed)
    @order[begin.order] = count()
    @lat = hist(duration)
    printf(\"%s %d %d\\n\", comm, nr_reclaimed, begin.order)
}";
    let cases = [
        Case {
            name: "spans",
            args: vec!["-e".into(), spans.into()],
            expect: "@n[mmql-workload]",
            mask: mask_times,
        },
        Case {
            name: "recipe-direct-reclaim-latency",
            args: vec!["run".into(), "direct-reclaim-latency".into()],
            expect: "memcg",
            mask: mask_times,
        },
        Case {
            name: "recipe-oom-kills",
            args: vec!["run".into(), "oom-kills".into()],
            expect: "OOM KILL",
            mask: mask_times,
        },
    ];
    compare(
        "oom",
        gate,
        &[
            "vmscan:memcg_reclaim",
            "vmscan:direct_reclaim",
            "oom:mark_victim",
        ],
        &cases,
    );
    drop(cg);
}

#[test]
fn masks_only_what_they_say() {
    let live = "memcg  mmql-workload   123     0.512 ms       32 0\n@latency_us[memcg]:\n[0, 1) 3 |@@|\n\n@n: 3\n";
    let off = "memcg  mmql-workload   123     0.498 ms       32 0\n@latency_us[memcg]:\n[1, 2) 3 |@@|\n\n@n: 3\n";
    assert_eq!(mask_times(live), mask_times(off));
    assert_ne!(mask_times(live), mask_times(&off.replace("@n: 3", "@n: 4")));
    let _ = Path::new("");
}
