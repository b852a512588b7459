//! Kernel memory per script (issue 16): what a running tracer's BPF maps and programs hold in
//! the kernel, as the kernel accounts it (`memlock:` in `/proc/PID/fdinfo` of each map and
//! program fd, the figure `bpftool map show` / `prog show` print). Input: a tracer command
//! line; output: bytes in maps and in programs, and start to attached for the same run.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::tracer::{self, Kind};

/// Bytes of kernel memory one tracer process holds.
#[derive(Clone, Copy)]
pub struct Held {
    pub maps: u64,
    pub progs: u64,
    pub attach: Duration,
}

impl Held {
    pub fn total(&self) -> u64 {
        self.maps + self.progs
    }
}

/// Sums `memlock` over the distinct maps and programs `pid` holds (an object opened twice
/// counts once).
fn held_by(pid: i32) -> (u64, u64) {
    let (mut maps, mut progs) = (0, 0);
    let mut seen: BTreeSet<(bool, u64)> = BTreeSet::new();
    for text in tracer::fdinfos(pid) {
        let field = |k: &str| tracer::fdinfo_field(&text, k).and_then(|v| v.parse::<u64>().ok());
        let Some(memlock) = field("memlock:") else {
            continue;
        };
        // A link's fdinfo names its program too but has no memlock of its own.
        if let Some(id) = field("map_id:") {
            if seen.insert((true, id)) {
                maps += memlock;
            }
        } else if let Some(id) = field("prog_id:") {
            if seen.insert((false, id)) {
                progs += memlock;
            }
        }
    }
    (maps, progs)
}

/// Starts the tracer, reads what it holds once attached, stops it.
pub fn measure(kind: Kind, argv: &[String]) -> Result<Held, String> {
    let t = tracer::start(kind, argv, Duration::from_secs(120))?;
    let (maps, progs) = held_by(t.pid());
    let attach = t.attach;
    t.stop().check()?;
    if maps + progs == 0 {
        return Err("the tracer held no BPF maps or programs".into());
    }
    Ok(Held {
        maps,
        progs,
        attach,
    })
}
