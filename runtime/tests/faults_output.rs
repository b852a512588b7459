//! Fault tests, output (root + BPF; skipped with a reason elsewhere). Input: a printf stream
//! whose reader goes away (`mmql … | head -1`) or whose `-o` file lands on a full filesystem.
//! Output: for the closed pipe, a quiet exit 0; for the full disk, exit 1 with one
//! `mmql: error:` line naming the output and the cause; probes detached, no BPF object left
//! behind either way.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use mmql_testsupport as support;
use mmql_testsupport::skip_unless_root_bpf;
use support::watched::{assert_clean, assert_one_line_error, mmql, Producer, Watched};

const STREAM: &str = r#"on kmem:mm_page_alloc { printf("order %d pfn %d\n", order, pfn) }"#;

/// `mmql … | head -1`: the first line arrives, the reader closes, the next write fails, and
/// mmql ends as other Unix tools do: detached, quietly, exit 0.
#[test]
fn output_pipe_closed() {
    skip_unless_root_bpf!();
    // An idle machine allocates few pages; the churn loop keeps the stream flowing.
    let _producer = Producer::start(&support::workload());
    let mut cmd = mmql(&["-e", STREAM]);
    cmd.stdout(Stdio::piped());
    let mut w = Watched::spawn_keep_stdout(&mut cmd);
    let out = w.take_stdout();
    let mut first = String::new();
    BufReader::new(out)
        .read_line(&mut first)
        .expect("read the first line");
    // The BufReader (and the pipe's read end) is dropped here, like `head` exiting.
    assert!(first.starts_with("order "), "first line: {first:?}");
    let e = w.finish(Duration::from_secs(30));
    assert_eq!(e.code(), Some(0), "{}", e.dump());
    assert!(
        e.mmql_lines().is_empty(),
        "a closed pipe is not an error\n{}",
        e.dump()
    );
    assert!(!e.stderr.contains("panicked"), "{}", e.dump());
    assert_clean(&e, "closed pipe");
}

/// A tiny tmpfs, unmounted (and its directory removed) however the test ends.
struct SmallFs(std::path::PathBuf);

impl SmallFs {
    fn mount(bytes: u64) -> Result<SmallFs, String> {
        let dir = std::env::temp_dir().join(format!("mmql-fullfs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "mmql-fullfs"])
            .arg(&dir)
            .status()
            .map_err(|e| e.to_string())?;
        if !st.success() {
            let _ = std::fs::remove_dir(&dir);
            return Err(format!("mount -t tmpfs failed: {st}"));
        }
        Ok(SmallFs(dir))
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// `-o FILE` on a filesystem that fills up while the stream is written.
#[test]
fn output_disk_full() {
    skip_unless_root_bpf!();
    let fs = match SmallFs::mount(64 * 1024) {
        Ok(fs) => fs,
        Err(why) => {
            support::skip_unless!(Some(support::SkipReason::new(format!(
                "cannot mount a small tmpfs: {why}"
            ))));
            unreachable!()
        }
    };
    let file = fs.0.join("out.txt");
    let _producer = Producer::start(&support::workload());
    let e = Watched::spawn(&mut mmql(&[
        "-o",
        file.to_str().expect("utf-8 path"),
        "-e",
        STREAM,
    ]))
    .finish(Duration::from_secs(60));
    let line = assert_one_line_error(
        &e,
        &format!("cannot write to `{}`", file.display()),
        "full disk",
    );
    assert!(line.contains("No space left on device"), "{line}");
    // What fitted was written: whole lines up to the point of failure.
    let written = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    assert!(written > 32 * 1024, "only {written} bytes reached the file");
    assert_clean(&e, "full disk");
}
