//! fsync and fdatasync calls of the server, counted with `perf stat` on the kernel's syscall
//! tracepoints (counters only: no ptrace, so the server runs at full speed). Without `perf`
//! or the permission to use the tracepoints the count is `None` and the report says so.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The tracepoints counted.
const EVENTS: &str = "syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync";
/// Time `perf` gets to attach to every thread before the phase starts.
pub const ATTACH: Duration = Duration::from_millis(300);

/// A running `perf stat` on the server process (all its threads, and threads started later).
pub struct FsyncCounter {
    child: Child,
}

impl FsyncCounter {
    /// Starts counting; wait [`ATTACH`] before the phase begins.
    pub fn attach(pid: u32) -> Option<Self> {
        let child = Command::new("perf")
            .args(["stat", "-x", ",", "-e", EVENTS, "-p", &pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .ok()?;
        Some(Self { child })
    }

    /// Stops counting (SIGINT, as at the end of an interactive `perf stat`) and returns the
    /// calls counted, `None` if perf could not count them.
    pub fn stop(self) -> Option<u64> {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-INT", &pid]).status().ok()?;
        if !sent.success() {
            return None;
        }
        let out = self.child.wait_with_output().ok()?;
        parse(&String::from_utf8_lossy(&out.stderr))
    }
}

/// Sums the counts of the CSV lines of `perf stat -x ,` (`count,unit,event,...`); `None` if
/// an event was not counted.
fn parse(text: &str) -> Option<u64> {
    let mut total = 0;
    let mut seen = 0;
    for line in text.lines() {
        let f: Vec<&str> = line.split(',').collect();
        if f.get(2).is_some_and(|e| e.starts_with("syscalls:")) {
            total += f.first()?.trim().parse::<u64>().ok()?;
            seen += 1;
        }
    }
    (seen > 0).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_perf_csv() {
        let text = "12,,syscalls:sys_enter_fsync,1000,100.00,,\n30,,syscalls:sys_enter_fdatasync,1000,100.00,,\n";
        assert_eq!(parse(text), Some(42));
        assert_eq!(
            parse("<not counted>,,syscalls:sys_enter_fsync,0,0.00,,\n"),
            None
        );
        assert_eq!(parse("perf: command not found\n"), None);
    }
}
