//! trace-cmd's side of the offline rows: input is an event and a pid, output is a trace.dat
//! file made the way this VM allows (`trace-cmd record` is refused here: writing
//! `/proc/sys/kernel/ftrace_enabled` and `set_ftrace_filter` gives EPERM). The benchmark enables
//! the event in a tracefs instance of its own, filtered to the workload's pid, and after the run
//! `trace-cmd extract` writes the file.
//!
//! Nothing outside the benchmark's instances is changed. `trace-cmd extract` itself resets the
//! top-level tracer state (it writes `tracing_on`, `set_event`, `trace`, `current_tracer`, every
//! event's `filter` and `events/enable` at the top level, and reads the top-level buffer), so it
//! runs in a private mount namespace where those files, `events/` included, are bind mounts
//! of a second, empty instance's (an instance's `events/` holds every format and the header
//! files): its writes land there, and the file it writes holds the same metadata as a
//! `trace-cmd record` file (every format, the kernel's symbols). Both instances are removed however the benchmark ends (extract
//! removes the one it extracts too).

use std::fs;
use std::path::{Path, PathBuf};

const TRACEFS: &str = "/sys/kernel/tracing";

/// A tracefs instance the benchmark made; removed on drop.
pub struct Instance {
    name: String,
    dir: PathBuf,
}

impl Instance {
    pub fn create(tag: &str) -> Result<Instance, String> {
        let name = format!("mmql-bench-{}-{tag}", std::process::id());
        let dir = Path::new(TRACEFS).join("instances").join(&name);
        fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let inst = Instance { name, dir };
        inst.write("tracing_on", "0")?;
        Ok(inst)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn write(&self, file: &str, value: &str) -> Result<(), String> {
        let path = self.dir.join(file);
        fs::write(&path, value).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    /// Records `event` (`cat:name`) of `pid` only, into a buffer of `buffer_kb` per CPU.
    pub fn start(&self, event: &str, pid: u32, buffer_kb: u64) -> Result<(), String> {
        let (cat, name) = event.split_once(':').ok_or("event needs a category")?;
        self.write("buffer_size_kb", &buffer_kb.to_string())?;
        self.write("set_event_pid", &pid.to_string())?;
        self.write(&format!("events/{cat}/{name}/enable"), "1")?;
        self.write("tracing_on", "1")
    }

    pub fn stop(&self) -> Result<(), String> {
        self.write("tracing_on", "0")
    }

    /// Records in the buffer, and records lost (overwritten or dropped), over every CPU.
    pub fn counts(&self) -> (u64, u64) {
        let (mut entries, mut lost) = (0, 0);
        let Ok(cpus) = fs::read_dir(self.dir.join("per_cpu")) else {
            return (0, 0);
        };
        for cpu in cpus.flatten() {
            let stats = fs::read_to_string(cpu.path().join("stats")).unwrap_or_default();
            for line in stats.lines() {
                let Some((key, value)) = line.split_once(':') else {
                    continue;
                };
                let n: u64 = value.trim().parse().unwrap_or(0);
                match key {
                    "entries" => entries += n,
                    "overrun" | "dropped events" => lost += n,
                    _ => {}
                }
            }
        }
        (entries, lost)
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if self.dir.exists() {
            let _ = self.write("tracing_on", "0");
            let _ = self.write("events/enable", "0");
            let _ = fs::remove_dir(&self.dir);
        }
    }
}

/// Removes the instances of benchmarks that were killed before they could (`kill -9`): named
/// `mmql-bench-PID-...` for a PID that no longer runs.
pub fn remove_stale() {
    let Ok(dirs) = fs::read_dir(Path::new(TRACEFS).join("instances")) else {
        return;
    };
    for d in dirs.flatten() {
        let name = d.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("mmql-bench-")
            .and_then(|r| r.split('-').next())
        else {
            continue;
        };
        if !pid.is_empty() && !Path::new("/proc").join(pid).exists() {
            let _ = fs::write(d.path().join("tracing_on"), "0");
            let _ = fs::remove_dir(d.path());
        }
    }
}

/// SIGINT, SIGTERM and SIGHUP held back while the instances exist, so that Ctrl-C cannot end
/// the benchmark before they are removed: a signal that came meanwhile is delivered when this
/// is dropped. Children start with the signals unblocked (std resets the mask in them).
pub struct SignalsHeld {
    old: libc::sigset_t,
}

impl SignalsHeld {
    pub fn hold() -> SignalsHeld {
        // SAFETY: sigset_t is plain data, filled by sigemptyset/sigaddset; pthread_sigmask
        // only reads `set` and writes `old`.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                libc::sigaddset(&mut set, sig);
            }
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
            SignalsHeld { old }
        }
    }
}

impl Drop for SignalsHeld {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved by `hold`.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}

/// A copy of /proc/kallsyms for extract's private view: trace-cmd fails ("error in size of
/// file") when the file changes between its two reads, which any BPF program loaded meanwhile
/// makes it do. Removed on drop.
pub struct Symbols {
    file: PathBuf,
}

impl Symbols {
    pub fn copy(scratch: &Path) -> Result<Symbols, String> {
        let file = scratch.join(format!("mmql-bench-{}-kallsyms", std::process::id()));
        let text =
            fs::read("/proc/kallsyms").map_err(|e| format!("reading /proc/kallsyms: {e}"))?;
        fs::write(&file, text).map_err(|e| format!("writing {}: {e}", file.display()))?;
        Ok(Symbols { file })
    }
}

impl Drop for Symbols {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.file);
    }
}

/// The command that extracts `data` into `out` with the top level hidden behind `decoy`.
pub fn extract_argv(
    symbols: &Symbols,
    decoy: &Instance,
    data: &Instance,
    out: &Path,
) -> Vec<String> {
    const SCRIPT: &str = r#"set -e
mount --make-rprivate /
t=/sys/kernel/tracing
for f in "$t/instances/$2"/*; do
    f=${f##*/}
    mount --bind "$t/instances/$2/$f" "$t/$f"
done
mount --bind "$1" /proc/kallsyms
exec trace-cmd extract -B "$3" -o "$4""#;
    [
        "unshare",
        "-m",
        "sh",
        "-c",
        SCRIPT,
        "sh",
        &symbols.file.display().to_string(),
        decoy.name(),
        data.name(),
        &out.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}
