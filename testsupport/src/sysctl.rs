//! A sysctl set for the length of a test: the old value is read first and written back when
//! the guard drops, on every exit path including a failed assertion.

use std::path::PathBuf;

/// `/proc/sys/<name>` holding a test's value until dropped.
pub struct Sysctl {
    path: PathBuf,
    saved: String,
}

impl Sysctl {
    /// Sets `/proc/sys/<name>` (e.g. `vm/percpu_pagelist_high_fraction`) to `value`; panics
    /// with the path when it cannot be read or written.
    pub fn set(name: &str, value: &str) -> Sysctl {
        let path = PathBuf::from("/proc/sys").join(name);
        let saved = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
            .trim()
            .to_string();
        std::fs::write(&path, value)
            .unwrap_or_else(|e| panic!("write {value} to {}: {e}", path.display()));
        Sysctl { path, saved }
    }
}

impl Drop for Sysctl {
    fn drop(&mut self) {
        if let Err(e) = std::fs::write(&self.path, &self.saved) {
            // Never panic in a drop (it may run while unwinding); say it where CI shows it.
            eprintln!(
                "could not restore {} to {}: {e}",
                self.path.display(),
                self.saved
            );
        }
    }
}
