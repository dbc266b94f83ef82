//! What the benchmark reads from `/proc`: a process's resident memory (to judge whether
//! the server's memory stays flat) and its CPU time (to show which side of the loopback
//! used the machine's two cores).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Linux reports `utime`/`stime` in `USER_HZ` ticks, which the kernel's ABI fixes at
/// 100 per second on every architecture this runs on (what `getconf CLK_TCK` prints).
const TICKS_PER_SECOND: f64 = 100.0;

#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} has no {what}")]
    Missing { path: PathBuf, what: &'static str },
}

fn read(path: PathBuf) -> Result<(String, PathBuf), ProcError> {
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok((text, path)),
        Err(source) => Err(ProcError::Read { path, source }),
    }
}

/// `None` is this process.
fn proc_dir(pid: Option<u32>) -> PathBuf {
    pid.map_or_else(|| PathBuf::from("/proc/self"), |p| PathBuf::from(format!("/proc/{p}")))
}

/// Resident set size in KiB, from the `VmRSS:` line of `/proc/PID/status`.
pub fn rss_kib(pid: u32) -> Result<u64, ProcError> {
    let (text, path) = read(proc_dir(Some(pid)).join("status"))?;
    parse_vm_rss(&text).ok_or(ProcError::Missing { path, what: "VmRSS line" })
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line["VmRSS:".len()..].split_whitespace().next()?.parse().ok()
}

/// User plus system CPU seconds used so far by all threads of `pid` (`None`: this process).
pub fn cpu_seconds(pid: Option<u32>) -> Result<f64, ProcError> {
    let (text, path) = read(proc_dir(pid).join("stat"))?;
    parse_cpu_ticks(&text)
        .map(|ticks| ticks as f64 / TICKS_PER_SECOND)
        .ok_or(ProcError::Missing { path, what: "utime/stime fields" })
}

fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may itself contain spaces or
    // parentheses, so fields are counted from the last ')'. After it comes field 3
    // (state); utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// CPU seconds all processes on the machine have used since boot, from the first line
/// of `/proc/stat`: what the generator and the server did not use of it was other
/// people's work (the noise on a shared machine).
pub fn machine_busy_seconds() -> Result<f64, ProcError> {
    let (text, path) = read(PathBuf::from("/proc/stat"))?;
    parse_busy_ticks(&text)
        .map(|ticks| ticks as f64 / TICKS_PER_SECOND)
        .ok_or(ProcError::Missing { path, what: "cpu line" })
}

fn parse_busy_ticks(stat: &str) -> Option<u64> {
    // cpu user nice system idle iowait irq softirq steal guest guest_nice; guest time is
    // already counted in user, and idle and iowait are not work.
    let mut fields = stat.lines().next()?.strip_prefix("cpu ")?.split_whitespace();
    let mut ticks = [0_u64; 8];
    for slot in &mut ticks {
        *slot = fields.next()?.parse().ok()?;
    }
    let [user, nice, system, _idle, _iowait, irq, softirq, steal] = ticks;
    Some(user + nice + system + irq + softirq + steal)
}

/// CPU use of one process over a window, in cores (1.0 = one core busy all along).
#[derive(Debug, Clone, Copy)]
pub struct CpuMark {
    whose: Whose,
    at: Instant,
    seconds: f64,
}

#[derive(Debug, Clone, Copy)]
pub enum Whose {
    ThisProcess,
    Process(u32),
    /// Every process on the machine.
    Machine,
}

impl Whose {
    fn seconds(self) -> Result<f64, ProcError> {
        match self {
            Whose::ThisProcess => cpu_seconds(None),
            Whose::Process(pid) => cpu_seconds(Some(pid)),
            Whose::Machine => machine_busy_seconds(),
        }
    }
}

impl CpuMark {
    pub fn now(whose: Whose) -> Result<CpuMark, ProcError> {
        Ok(CpuMark { whose, at: Instant::now(), seconds: whose.seconds()? })
    }

    /// CPU seconds used since the mark, and the same as a share of the wall time.
    pub fn since(&self) -> Result<CpuUse, ProcError> {
        let seconds = self.whose.seconds()? - self.seconds;
        let wall = self.at.elapsed().as_secs_f64();
        Ok(CpuUse { seconds, cores: if wall > 0.0 { seconds / wall } else { 0.0 } })
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct CpuUse {
    pub seconds: f64,
    pub cores: f64,
}

/// Resident memory samples of the server during a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RssSamples {
    /// (seconds since the run started, KiB)
    pub samples: Vec<(f64, u64)>,
}

impl RssSamples {
    pub fn first_kib(&self) -> Option<u64> {
        self.samples.first().map(|s| s.1)
    }
    pub fn last_kib(&self) -> Option<u64> {
        self.samples.last().map(|s| s.1)
    }
    pub fn max_kib(&self) -> Option<u64> {
        self.samples.iter().map(|s| s.1).max()
    }
}

/// Samples `pid`'s RSS every `interval` until `stop` resolves; a process that went away
/// ends the sampling (its last sample stays).
pub async fn sample_rss(
    pid: u32,
    interval: Duration,
    started: Instant,
    stop: impl std::future::Future<Output = ()>,
) -> RssSamples {
    let mut samples = RssSamples::default();
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = ticks.tick() => match rss_kib(pid) {
                Ok(kib) => samples.samples.push((started.elapsed().as_secs_f64(), kib)),
                Err(e) => {
                    eprintln!("memory sampling stopped: {e}");
                    break;
                }
            },
            () = &mut stop => break,
        }
    }
    // One last sample at the end, so `last` is the state after the whole run.
    if let Ok(kib) = rss_kib(pid) {
        samples.samples.push((started.elapsed().as_secs_f64(), kib));
    }
    samples
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_from_its_line_in_kib() {
        let status = "Name:\tcpwatch\nVmPeak:\t  900000 kB\nVmRSS:\t   12345 kB\nRssAnon:\t 100 kB\n";
        assert_eq!(parse_vm_rss(status), Some(12345));
        assert_eq!(parse_vm_rss("Name:\tkthreadd\n"), None, "kernel threads have no VmRSS");
    }

    #[test]
    fn cpu_ticks_are_counted_after_a_command_name_with_spaces_and_parentheses() {
        let stat = "4242 (tokio (rt) worker) S 1 4242 4242 0 -1 4194560 2000 0 0 0 150 25 0 0 20 0 3 0";
        assert_eq!(parse_cpu_ticks(stat), Some(175));
    }

    #[test]
    fn machine_busy_time_leaves_out_idle_and_iowait() {
        let stat = "cpu  100 5 50 9000 300 7 8 2 0 0\ncpu0 50 2 25 4500 150 3 4 1 0 0\n";
        assert_eq!(parse_busy_ticks(stat), Some(172));
    }

    #[test]
    fn this_process_has_memory_and_cpu_time() {
        assert!(rss_kib(std::process::id()).expect("own VmRSS") > 0);
        assert!(cpu_seconds(None).expect("own CPU time") >= 0.0);
        assert!(machine_busy_seconds().expect("the machine's CPU time") > 0.0);
    }
}
