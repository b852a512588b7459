//! Counts the records per event of a trace.dat, with lost-events marks: the reader alone, for
//! comparing with `trace-cmd report` and for timing it (`--time`).

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let time = args.iter().any(|a| a == "--time");
    let Some(path) = args.iter().find(|a| !a.starts_with("--")) else {
        eprintln!("usage: count [--time] FILE.dat");
        return ExitCode::from(2);
    };
    match run(path, time) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(path: &str, time: bool) -> tracedat::Result<()> {
    let start = Instant::now();
    let trace = tracedat::TraceDat::open(path.as_ref())?;
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_id = vec![0u64; 65536];
    let (mut total, mut lost_marks, mut lost) = (0u64, 0u64, 0u64);
    let mut events = trace.events()?;
    while let Some(item) = events.next()? {
        match item {
            tracedat::Item::Record(r) => {
                by_id[usize::from(r.format.id)] += 1;
                total += 1;
            }
            tracedat::Item::Lost(l) => {
                lost_marks += 1;
                lost += l.count.unwrap_or(0);
            }
        }
    }
    let elapsed = start.elapsed();
    for (id, &n) in by_id.iter().enumerate() {
        if n > 0 {
            if let Some(f) = trace.format_by_id(id as u16) {
                counts.insert(format!("{}:{}", f.system, f.name), n);
            }
        }
    }
    for (name, n) in &counts {
        println!("{name} {n}");
    }
    println!(
        "lost-marks {lost_marks} lost-counted {lost} lost-in-stats {}",
        trace.lost_in_stats()
    );
    if time {
        let secs = elapsed.as_secs_f64();
        eprintln!(
            "{total} records in {secs:.3} s: {:.0} records/s",
            total as f64 / secs
        );
    }
    Ok(())
}
