//! Headless Chromium for tests of the HTML report: load a file with networking off, return
//! the DOM it rendered and every console message, or take a screenshot.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::SkipReason;

pub const CHROMIUM: &str = "/usr/bin/chromium";

/// `None` when headless Chromium is installed; the skip reason otherwise.
pub fn require_chromium() -> Option<SkipReason> {
    if Path::new(CHROMIUM).exists() {
        None
    } else {
        Some(SkipReason::new(
            "headless Chromium is not installed (apt-get install chromium)",
        ))
    }
}

/// What the browser made of a page.
pub struct Loaded {
    /// The DOM after load, serialised (`--dump-dom`).
    pub dom: String,
    /// Console messages (`console.*`, uncaught errors, failed resource loads).
    pub console: Vec<String>,
}

fn chromium(extra: &[&str], page: &Path) -> std::process::Output {
    static N: AtomicU32 = AtomicU32::new(0);
    let profile = std::env::temp_dir().join(format!(
        "mmql-chromium-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let out = Command::new("timeout")
        .arg("120")
        .arg(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    let _ = std::fs::remove_dir_all(&profile);
    out
}

/// Loads `page` and returns its DOM and console messages.
pub fn load(page: &Path) -> Loaded {
    let out = chromium(&["--enable-logging=stderr", "--v=0", "--dump-dom"], page);
    assert!(out.status.success(), "chromium --dump-dom: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    Loaded {
        dom: String::from_utf8_lossy(&out.stdout).into_owned(),
        console: stderr
            .lines()
            .filter(|l| l.contains(":CONSOLE"))
            .map(str::to_string)
            .collect(),
    }
}

/// A PNG of the top `width`×`height` pixels of `page`.
pub fn screenshot(page: &Path, png: &Path, width: u32, height: u32) {
    let out = chromium(
        &[
            &format!("--screenshot={}", png.display()),
            &format!("--window-size={width},{height}"),
        ],
        page,
    );
    assert!(
        out.status.success() && png.exists(),
        "chromium --screenshot: {out:?}"
    );
}
