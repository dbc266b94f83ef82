//! The result of one load run, as the generator prints it (one JSON object) and the
//! report reads it back.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::procfs::{CpuUse, RssSamples};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Closed loop: every connection sends its next delivery as soon as the previous is answered.
    Saturation,
    /// Open loop: deliveries are due at a fixed rate whatever the answers do.
    FixedRate,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    pub label: String,
    pub url: String,
    pub mode: Mode,
    pub connections: usize,
    pub generator_threads: usize,
    pub warmup_s: f64,
    pub duration_s: f64,
    /// Requests per second asked for (fixed rate only).
    pub target_rate: Option<f64>,
    /// Deliveries built and signed before the run.
    pub prebuilt: usize,
    /// True when a saturation run used every pre-built delivery before its time was up.
    pub exhausted: bool,
    /// Everything the run did, warm-up included: what the server must have stored.
    pub totals: Counts,
    /// The measured window only (after the warm-up).
    pub measured: Measured,
    /// A few of the errors' messages, to tell a refused connection from a timeout.
    #[serde(default)]
    pub error_examples: Vec<String>,
    pub generator_cpu: Option<CpuUse>,
    /// Every process on the machine: beyond generator and server, it is other people's
    /// work competing for the same two cores.
    #[serde(default)]
    pub machine_cpu: Option<CpuUse>,
    pub server: Option<ServerUse>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Counts {
    pub sent: u64,
    pub ok_2xx: u64,
    pub non_2xx: u64,
    /// Connection failures and timeouts: no HTTP answer.
    pub errors: u64,
    /// Deliveries due (fixed rate) but never sent because the run's time was up.
    pub unsent: u64,
    pub statuses: BTreeMap<u16, u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measured {
    pub answered: u64,
    pub ok_2xx: u64,
    pub non_2xx: u64,
    pub errors: u64,
    /// 2xx answers per second over the measured window.
    pub ok_per_s: f64,
    /// Fixed rate: from each delivery's scheduled send time to its answer, so a stalled
    /// server shows in the figures instead of silently slowing the generator down.
    /// Saturation: from the actual send to the answer.
    pub latency_ms: Latency,
    /// Fixed rate: how late the generator's pacer released deliveries (its own
    /// scheduling noise, already included in `latency_ms`).
    pub pacer_lag_ms: Option<Latency>,
    /// Runs of two minutes or more: `latency_ms` for each minute of the window.
    #[serde(default)]
    pub latency_by_minute: Vec<Latency>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Latency {
    pub count: usize,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Latency {
    /// Summarises durations in microseconds (sorted here), nearest-rank percentiles.
    pub fn from_micros(mut micros: Vec<u32>) -> Latency {
        if micros.is_empty() {
            return Latency::default();
        }
        micros.sort_unstable();
        let n = micros.len();
        let rank = |q: f64| {
            let index = ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
            f64::from(micros[index]) / 1000.0
        };
        let sum: u64 = micros.iter().map(|&m| u64::from(m)).sum();
        Latency {
            count: n,
            mean: sum as f64 / n as f64 / 1000.0,
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            p999: rank(0.999),
            max: f64::from(micros[n - 1]) / 1000.0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerUse {
    pub pid: u32,
    pub cpu: Option<CpuUse>,
    pub rss: RssSamples,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank_in_milliseconds() {
        let latency = Latency::from_micros((1..=1000).rev().collect());
        assert_eq!(latency.count, 1000);
        assert_eq!(latency.p50, 0.5);
        assert_eq!(latency.p99, 0.99);
        assert_eq!(latency.p999, 0.999);
        assert_eq!(latency.max, 1.0);
        assert!((latency.mean - 0.5005).abs() < 1e-9);
    }

    #[test]
    fn one_slow_answer_in_a_hundred_is_the_p99() {
        let mut micros = vec![1000; 99];
        micros.push(50_000);
        let latency = Latency::from_micros(micros);
        assert_eq!(latency.p99, 1.0, "the 99th of 100 answers is still fast");
        assert_eq!(latency.max, 50.0);
    }

    #[test]
    fn no_answers_give_zeros_not_a_panic() {
        assert_eq!(Latency::from_micros(Vec::new()).count, 0);
    }
}
