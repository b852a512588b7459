//! `-c CMD`: the command is forked before the probes attach (so its pid can be compiled into
//! the filter) but held at a gate until they are attached, then released to exec.
//!
//! std's `Command::spawn` waits for the exec to happen, so a gate inside `pre_exec` would
//! deadlock; hence a plain fork whose child only reads the gate and execs.

use std::ffi::CString;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

pub struct GatedChild {
    pid: libc::pid_t,
    gate: Option<OwnedFd>,
    pub pidfd: Option<OwnedFd>,
    status: Option<i32>,
}

impl GatedChild {
    pub fn spawn(cmd: &str) -> io::Result<GatedChild> {
        let sh = CString::new("/bin/sh")?;
        let argv0 = CString::new("sh")?;
        let dash_c = CString::new("-c")?;
        // `exec` so the traced pid is the command itself, not a shell around it.
        let script = CString::new(format!("exec {cmd}"))?;
        let argv = [
            argv0.as_ptr(),
            dash_c.as_ptr(),
            script.as_ptr(),
            std::ptr::null(),
        ];
        let mut fds = [0 as RawFd; 2];
        // SAFETY: pipe2 fills two fds on success.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fork; the child below only calls async-signal-safe functions.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        if pid == 0 {
            let mut b = 0u8;
            // SAFETY: read/execv/_exit in the forked child; argv outlives the call.
            unsafe {
                libc::close(fds[1]);
                // EOF without a byte means mmql gave up before attaching: don't run.
                if libc::read(fds[0], (&mut b as *mut u8).cast(), 1) != 1 {
                    libc::_exit(127);
                }
                libc::execv(sh.as_ptr(), argv.as_ptr());
                libc::_exit(127);
            }
        }
        // SAFETY: closing the read end we don't use; owning the write end.
        unsafe { libc::close(fds[0]) };
        let gate = unsafe { OwnedFd::from_raw_fd(fds[1]) };
        // SAFETY: pidfd_open returns a new fd or -1.
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        // SAFETY: a non-negative result is a fresh fd owned here.
        let pidfd = (pidfd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) });
        Ok(GatedChild {
            pid,
            gate: Some(gate),
            pidfd,
            status: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid as u32
    }

    pub fn release(&mut self) -> io::Result<()> {
        if let Some(g) = self.gate.take() {
            let b = 1u8;
            // SAFETY: writing one byte to our own pipe.
            if unsafe {
                libc::write(
                    std::os::fd::AsRawFd::as_raw_fd(&g),
                    (&b as *const u8).cast(),
                    1,
                )
            } != 1
            {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }

    /// Reaps the child if it has exited.
    pub fn try_wait(&mut self) -> Option<i32> {
        if self.status.is_none() {
            let mut st = 0;
            // SAFETY: waiting for our own child without blocking.
            if unsafe { libc::waitpid(self.pid, &mut st, libc::WNOHANG) } == self.pid {
                self.status = Some(st);
            }
        }
        self.status
    }

    /// Stops a child still running when mmql stops (Ctrl-C, -d, exit()), and reaps it:
    /// SIGTERM first, SIGKILL if it is still there after a grace period, so a child that
    /// ignores SIGTERM cannot keep mmql (and its probes) alive.
    pub fn stop(&mut self) {
        self.gate.take();
        if self.try_wait().is_some() {
            return;
        }
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.pid, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
        while std::time::Instant::now() < deadline {
            if self.try_wait().is_some() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let mut st = 0;
        // SAFETY: killing and reaping our own child.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            libc::waitpid(self.pid, &mut st, 0);
        }
        self.status = Some(st);
    }
}

/// The status a shell would report for a reaped child that did not `exit 0`: its exit code, or
/// 128 + the signal that killed it.
pub fn failure_status(status: i32) -> Option<u8> {
    if libc::WIFEXITED(status) {
        let code = libc::WEXITSTATUS(status);
        return (code != 0).then_some(code as u8);
    }
    libc::WIFSIGNALED(status).then(|| (128 + libc::WTERMSIG(status)).min(255) as u8)
}

/// `-p PID`: a process mmql did not start, watched through a pidfd that polls readable once
/// it has exited. A pid that names no process is refused before anything is loaded.
pub struct TracedPid(OwnedFd);

impl TracedPid {
    pub fn open(pid: u32) -> Result<TracedPid, String> {
        // SAFETY: pidfd_open returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::ESRCH) => format!("`-p {pid}`: no such process"),
                Some(libc::EINVAL) => format!(
                    "`-p {pid}`: not a process id (a thread's id? give its process's, the TGID)"
                ),
                _ => format!("`-p {pid}`: cannot watch the process: {e}"),
            });
        }
        // SAFETY: a non-negative result is a fresh fd owned here.
        Ok(TracedPid(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }))
    }

    pub fn fd(&self) -> RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.0)
    }

    /// True once the process has exited (its pidfd is readable).
    pub fn has_exited(&self) -> bool {
        let mut p = libc::pollfd {
            fd: self.fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, no waiting.
        let n = unsafe { libc::poll(&mut p, 1, 0) };
        n > 0 && p.revents & libc::POLLIN != 0
    }
}

/// How a reaped child ended, in words, when that was not `exit 0`.
pub fn describe_failure(status: i32) -> Option<String> {
    if libc::WIFEXITED(status) {
        let code = libc::WEXITSTATUS(status);
        return (code != 0).then(|| format!("exited with status {code}"));
    }
    if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        // SAFETY: strsignal returns a pointer to a static or thread-local string.
        let name = unsafe { std::ffi::CStr::from_ptr(libc::strsignal(sig)) }
            .to_string_lossy()
            .into_owned();
        return Some(format!("was killed by signal {sig} ({name})"));
    }
    None
}

impl Drop for GatedChild {
    fn drop(&mut self) {
        self.stop();
    }
}
