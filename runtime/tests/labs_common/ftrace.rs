//! A witness outside BPF: a tracefs instance of the test's own, recording chosen tracepoints
//! into the kernel's trace ring buffer, for counting how often the kernel fired them. Neither
//! mmql nor bpftrace is involved, so its counts check the recipe and the kernel's
//! /proc/vmstat counters alike. A thread marks in the same buffer each change of one knob
//! (a lab's zone_reclaim_mode), so events can be counted over the time it had a value. The
//! instance is removed when the witness is dropped, also when an assertion fails.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

const INSTANCES: &str = "/sys/kernel/tracing/instances";
/// What the marks say: `KNOB=value`.
const MARK: &str = "KNOB=";

pub struct Ftrace {
    dir: PathBuf,
    events: Vec<String>,
    done: Arc<AtomicBool>,
    marker: Option<JoinHandle<()>>,
}

impl Ftrace {
    /// Starts recording `events` (`vmscan/mm_vmscan_node_reclaim_end`) into a new instance
    /// with a buffer of 16 MiB per CPU (about 250 000 short records), and marking each change
    /// of the value in `knob`, looked at every millisecond.
    pub fn start(events: &[&str], knob: &'static str) -> Ftrace {
        let dir = PathBuf::from(INSTANCES).join(format!("mmql-test-{}", std::process::id()));
        remove_stale();
        fs::create_dir(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let mut f = Ftrace {
            dir,
            events: events.iter().map(|e| e.to_string()).collect(),
            done: Arc::new(AtomicBool::new(false)),
            marker: None,
        };
        f.write("buffer_size_kb", "16384");
        for e in &f.events {
            f.write(&format!("events/{e}/enable"), "1");
        }
        let (done, marks) = (f.done.clone(), f.dir.join("trace_marker"));
        f.marker = Some(std::thread::spawn(move || {
            let mut last = String::new();
            while !done.load(Ordering::Relaxed) {
                let now = fs::read_to_string(knob)
                    .unwrap_or_default()
                    .trim()
                    .to_string();
                if now != last {
                    let _ = fs::write(&marks, format!("{MARK}{now}"));
                    last = now;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }));
        f
    }

    fn write(&self, file: &str, value: &str) {
        let p = self.dir.join(file);
        fs::write(&p, value).unwrap_or_else(|e| panic!("write {value} to {}: {e}", p.display()));
    }

    /// Stops recording; what fired, and the sums of the numeric fields. Fails if the buffer
    /// overflowed: the counts would then be short.
    pub fn stop(&mut self) -> Counts {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.marker.take() {
            let _ = t.join();
        }
        self.write("tracing_on", "0");
        let overrun: u64 = fs::read_dir(self.dir.join("per_cpu"))
            .expect("per_cpu")
            .filter_map(|d| fs::read_to_string(d.ok()?.path().join("stats")).ok())
            .flat_map(|s| {
                s.lines()
                    .filter_map(|l| l.strip_prefix("overrun: ")?.trim().parse::<u64>().ok())
                    .collect::<Vec<_>>()
            })
            .sum();
        assert_eq!(overrun, 0, "the tracefs witness lost records");
        let text = fs::read_to_string(self.dir.join("trace")).expect("read the trace");
        let mut counts = Counts::default();
        let mut knob = String::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            // `   comm-TID   [CPU] flags  TIMESTAMP: event: fields`
            let Some((_, rest)) = line.split_once(": ") else {
                continue;
            };
            let (event, fields) = rest.split_once(": ").unwrap_or((rest, ""));
            if let Some(v) = fields.trim().strip_prefix(MARK) {
                knob = v.to_string();
                continue;
            }
            let scopes = if knob.is_empty() {
                vec![String::new()]
            } else {
                vec![String::new(), knob.clone()]
            };
            for scope in scopes {
                *counts
                    .fired
                    .entry((scope.clone(), event.to_string()))
                    .or_default() += 1;
                for (k, v) in fields.split_whitespace().filter_map(|f| f.split_once('=')) {
                    if let Ok(v) = v.parse::<u64>() {
                        let key = (scope.clone(), event.to_string(), k.to_string());
                        let (sum, max) = counts.fields.entry(key).or_default();
                        *sum += v;
                        *max = (*max).max(v);
                    }
                }
            }
        }
        counts
    }
}

impl Drop for Ftrace {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.marker.take() {
            let _ = t.join();
        }
        for e in &self.events {
            let _ = fs::write(self.dir.join(format!("events/{e}/enable")), "0");
        }
        let _ = fs::remove_dir(&self.dir);
    }
}

/// How many times each event fired, and the sum and largest value of each of its numeric
/// fields: over the whole recording (scope "") and while the knob had a value (that value).
#[derive(Default)]
pub struct Counts {
    fired: BTreeMap<(String, String), u64>,
    fields: BTreeMap<(String, String, String), (u64, u64)>,
}

impl Counts {
    /// How many times `event` (`mm_vmscan_node_reclaim_end`) fired.
    pub fn of(&self, event: &str) -> u64 {
        self.of_while("", event)
    }

    /// How many times `event` fired while the knob read `value` ("" for the whole time).
    pub fn of_while(&self, value: &str, event: &str) -> u64 {
        let key = (value.to_string(), event.to_string());
        self.fired.get(&key).copied().unwrap_or(0)
    }

    /// The sum of `event`'s field `field` (`nr_reclaimed`) over every time it fired.
    pub fn sum(&self, event: &str, field: &str) -> u64 {
        self.field(event, field).0
    }

    /// The largest value `event`'s field `field` had: the most one missed event can hide.
    pub fn max(&self, event: &str, field: &str) -> u64 {
        self.field(event, field).1
    }

    fn field(&self, event: &str, field: &str) -> (u64, u64) {
        let key = (String::new(), event.to_string(), field.to_string());
        self.fields.get(&key).copied().unwrap_or_default()
    }
}

/// Removes the instances (and their 16 MiB buffers) of test runs that were killed before they
/// could: `mmql-test-PID` for a PID that no longer runs, or this process's own.
fn remove_stale() {
    let Ok(dirs) = fs::read_dir(INSTANCES) else {
        return;
    };
    for d in dirs.flatten() {
        let name = d.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("mmql-test-") else {
            continue;
        };
        let ours = pid == std::process::id().to_string();
        if ours || (!pid.is_empty() && !PathBuf::from("/proc").join(pid).exists()) {
            let _ = fs::write(d.path().join("tracing_on"), "0");
            let _ = fs::remove_dir(d.path());
        }
    }
}
