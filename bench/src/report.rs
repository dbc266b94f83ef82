//! BENCHMARKS.md from one run's results directory (written by `scripts/bench.sh`):
//! the side-by-side table, the verdict on each target, the check that every
//! acknowledged delivery was stored, and the evidence that the generator is not the
//! bottleneck. A hand-written part after [`NOTES_MARKER`] survives regeneration.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::de::DeserializeOwned;

use crate::fsync::FsyncProbe;
use crate::results::RunReport;

/// Everything after this line in an existing BENCHMARKS.md is kept as it is.
pub const NOTES_MARKER: &str =
    "<!-- Hand-written notes below this line are kept when the file is regenerated. -->";

/// The targets of issue 5 on this 2-core machine.
const MIN_THROUGHPUT_RATIO: f64 = 0.40;
const MAX_P99_MS: f64 = 10.0;
/// Memory is flat when, after the first minute, it grew by no more than this share...
const FLAT_GROWTH_RATIO: f64 = 0.05;
/// ...or by no more than this many KiB (allocator and page-cache noise on a small heap).
const FLAT_GROWTH_KIB: u64 = 4096;
/// The part of a long run that counts as warm-up for the memory verdict.
const MEMORY_WARMUP_S: f64 = 60.0;

/// The files of a results directory. `scripts/bench.sh` writes them under these names.
pub struct Results {
    pub baseline_saturation: RunReport,
    pub baseline_rate: RunReport,
    pub cpwatch_saturation: RunReport,
    pub cpwatch_rate: RunReport,
    /// The 10-minute memory run, when `--long` was given.
    pub cpwatch_long: Option<RunReport>,
    /// Extra baseline saturation runs that vary the generator (`baseline-saturation-*.json`).
    pub generator_checks: Vec<RunReport>,
    /// Debian's `wrk` against the baseline, its text output, when it ran.
    pub wrk: Option<String>,
    /// `cpwatch status --json` after the cpwatch runs.
    pub status: serde_json::Value,
    pub fsync: Option<FsyncProbe>,
    /// `key: value` lines describing the machine.
    pub machine: String,
    /// A Markdown fragment from the dashboard benchmark (issue 5, item 3), when it ran.
    pub dashboard: Option<String>,
}

fn read_json<T: DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a result file", path.display()))
}

fn read_optional(path: &Path) -> anyhow::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

impl Results {
    pub fn load(dir: &Path) -> anyhow::Result<Results> {
        let file = |name: &str| dir.join(name);
        let mut generator_checks: Vec<(PathBuf, RunReport)> = Vec::new();
        for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
            let path = entry.context("cannot list the results")?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if name.starts_with("baseline-saturation-") && name.ends_with(".json") {
                let report = read_json(&path)?;
                generator_checks.push((path, report));
            }
        }
        generator_checks.sort_by(|a, b| a.0.cmp(&b.0));
        let cpwatch_long = match read_optional(&file("cpwatch-long.json"))? {
            Some(text) => {
                Some(serde_json::from_str(&text).context("cpwatch-long.json is not a result file")?)
            }
            None => None,
        };
        let fsync = match read_optional(&file("fsync.json"))? {
            Some(text) => Some(serde_json::from_str(&text).context("fsync.json is not a probe result")?),
            None => None,
        };
        Ok(Results {
            baseline_saturation: read_json(&file("baseline-saturation.json"))?,
            baseline_rate: read_json(&file("baseline-rate.json"))?,
            cpwatch_saturation: read_json(&file("cpwatch-saturation.json"))?,
            cpwatch_rate: read_json(&file("cpwatch-rate.json"))?,
            cpwatch_long,
            generator_checks: generator_checks.into_iter().map(|(_, r)| r).collect(),
            wrk: read_optional(&file("wrk-baseline.txt"))?,
            status: read_json(&file("cpwatch-status.json"))?,
            fsync,
            machine: read_optional(&file("machine.txt"))?.unwrap_or_default(),
            dashboard: read_optional(&file("dashboard.md"))?,
        })
    }

    fn cpwatch_runs(&self) -> impl Iterator<Item = &RunReport> {
        [&self.cpwatch_saturation, &self.cpwatch_rate].into_iter().chain(self.cpwatch_long.as_ref())
    }
}

/// What `wrk` printed that the table needs.
#[derive(Debug, Clone, PartialEq)]
pub struct WrkSummary {
    pub requests_per_s: f64,
    pub non_2xx: u64,
    pub socket_errors: u64,
    pub command: Option<String>,
}

pub fn parse_wrk(text: &str) -> Option<WrkSummary> {
    let after = |prefix: &str| {
        text.lines().find_map(|l| l.trim().strip_prefix(prefix).map(|rest| rest.trim().to_string()))
    };
    let requests_per_s = after("Requests/sec:")?.parse().ok()?;
    let non_2xx = after("Non-2xx or 3xx responses:").and_then(|n| n.parse().ok()).unwrap_or(0);
    // "Socket errors: connect 0, read 0, write 0, timeout 0"
    let socket_errors = after("Socket errors:").map_or(0, |rest| {
        rest.split(',').filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok()).sum()
    });
    Some(WrkSummary { requests_per_s, non_2xx, socket_errors, command: after("command:") })
}

/// The memory verdict of a long run: RSS after the first minute against RSS at the end.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryVerdict {
    pub warm_kib: u64,
    pub last_kib: u64,
    pub max_kib: u64,
    pub flat: bool,
}

pub fn memory_verdict(run: &RunReport) -> Option<MemoryVerdict> {
    let samples = &run.server.as_ref()?.rss.samples;
    let warm_from = MEMORY_WARMUP_S.min(run.duration_s / 10.0);
    let warm_kib = samples.iter().find(|(t, _)| *t >= warm_from).or(samples.first())?.1;
    let last_kib = samples.last()?.1;
    let max_kib = samples.iter().map(|s| s.1).max()?;
    let allowed = FLAT_GROWTH_KIB.max((warm_kib as f64 * FLAT_GROWTH_RATIO) as u64);
    Some(MemoryVerdict { warm_kib, last_kib, max_kib, flat: last_kib.saturating_sub(warm_kib) <= allowed })
}

fn yes_no(met: bool) -> &'static str {
    if met {
        "**yes**"
    } else {
        "**NO**"
    }
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(|| "?".to_string(), |k| format!("{:.1}", k as f64 / 1024.0))
}

fn cores(run: &RunReport, server: bool) -> String {
    let cpu = if server { run.server.as_ref().and_then(|s| s.cpu) } else { run.generator_cpu };
    cpu.map_or_else(|| "?".to_string(), |c| format!("{:.2}", c.cores))
}

/// CPU that neither the generator nor the server used: other people's work on the machine.
fn other_cores(run: &RunReport) -> String {
    match (run.machine_cpu, run.generator_cpu, run.server.as_ref().and_then(|s| s.cpu)) {
        (Some(machine), Some(generator), Some(server)) => {
            format!("{:.2}", (machine.cores - generator.cores - server.cores).max(0.0))
        }
        _ => "?".to_string(),
    }
}

fn thousands(n: f64) -> String {
    let digits = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The rendered file and whether every acknowledged delivery was found stored.
pub struct Rendered {
    pub markdown: String,
    /// The table alone, for the terminal.
    pub table: String,
    pub stored_matches: bool,
}

pub fn render(results: &Results, command: &str, date: &str, notes: Option<&str>) -> Rendered {
    let (bs, br, cs, cr) = (
        &results.baseline_saturation,
        &results.baseline_rate,
        &results.cpwatch_saturation,
        &results.cpwatch_rate,
    );
    let ratio = if bs.measured.ok_per_s > 0.0 { cs.measured.ok_per_s / bs.measured.ok_per_s } else { 0.0 };
    let rate_clean = |r: &RunReport| r.totals.errors + r.totals.non_2xx + r.totals.unsent == 0;
    let p99_met = cr.measured.latency_ms.p99 < MAX_P99_MS && rate_clean(cr);
    let acknowledged: u64 = results.cpwatch_runs().map(|r| r.totals.ok_2xx).sum();
    let counts = &results.status["counts"];
    let stored = counts["deliveries"].as_i64();
    let duplicates = counts["duplicates"].as_i64().unwrap_or(0);
    let stored_matches = stored == i64::try_from(acknowledged).ok() && duplicates == 0;
    let memory = results.cpwatch_long.as_ref().and_then(memory_verdict);
    let rate_label = |r: &RunReport| format!("{:.0}/s", r.target_rate.unwrap_or_default());

    let mut table = String::new();
    let mut row = |cells: &[&str]| {
        let _ = writeln!(table, "| {} |", cells.join(" | "));
    };
    row(&["", "no-op baseline", "cpwatch serve", "cpwatch / baseline", "target", "met"]);
    row(&["---", "---:", "---:", "---:", "---", "---"]);
    row(&[
        &format!("saturation, {} connections (deliveries/s answered 2xx)", bs.connections),
        &thousands(bs.measured.ok_per_s),
        &thousands(cs.measured.ok_per_s),
        &format!("**{:.1} %**", ratio * 100.0),
        "≥ 40 % of baseline",
        yes_no(ratio >= MIN_THROUGHPUT_RATIO),
    ]);
    // The highest ceiling any generator found: the ratio against it is the strictest.
    let best_baseline = results
        .generator_checks
        .iter()
        .map(|r| r.measured.ok_per_s)
        .chain(results.wrk.as_deref().and_then(parse_wrk).map(|w| w.requests_per_s))
        .fold(bs.measured.ok_per_s, f64::max);
    if best_baseline > bs.measured.ok_per_s {
        let strict = cs.measured.ok_per_s / best_baseline;
        row(&[
            "the same against the highest baseline figure of any generator below",
            &thousands(best_baseline),
            &thousands(cs.measured.ok_per_s),
            &format!("{:.1} %", strict * 100.0),
            "≥ 40 % of baseline",
            yes_no(strict >= MIN_THROUGHPUT_RATIO),
        ]);
    }
    row(&[
        "latency at saturation, p50 / p99 (ms)",
        &format!("{:.2} / {:.2}", bs.measured.latency_ms.p50, bs.measured.latency_ms.p99),
        &format!("{:.2} / {:.2}", cs.measured.latency_ms.p50, cs.measured.latency_ms.p99),
        "",
        "",
        "",
    ]);
    let ms_ratio = |a: f64, b: f64| if a > 0.0 { format!("{:.1}×", b / a) } else { String::new() };
    for (name, get) in [
        ("p50", (|r: &RunReport| r.measured.latency_ms.p50) as fn(&RunReport) -> f64),
        ("p99", |r: &RunReport| r.measured.latency_ms.p99),
        ("p99.9", |r: &RunReport| r.measured.latency_ms.p999),
        ("max", |r: &RunReport| r.measured.latency_ms.max),
    ] {
        let is_p99 = name == "p99";
        row(&[
            &format!("{name} at {} (ms, from due time)", rate_label(cr)),
            &format!("{:.2}", get(br)),
            &format!("{:.2}", get(cr)),
            &ms_ratio(get(br), get(cr)),
            if is_p99 { "< 10 ms" } else { "" },
            if is_p99 { yes_no(p99_met) } else { "" },
        ]);
    }
    let lag = |r: &RunReport| {
        r.measured.pacer_lag_ms.as_ref().map_or_else(|| "?".to_string(), |l| format!("{:.2}", l.p99))
    };
    row(&[
        &format!("generator's own lateness at {}, p99 (ms; noise, included above)", rate_label(cr)),
        &lag(br),
        &lag(cr),
        "",
        "",
        "",
    ]);
    row(&[
        &format!("achieved rate at {} (deliveries/s)", rate_label(cr)),
        &format!("{:.0}", br.measured.ok_per_s),
        &format!("{:.0}", cr.measured.ok_per_s),
        "",
        "",
        "",
    ]);
    let failures = |runs: &[&RunReport]| {
        let (non, err, unsent) = runs.iter().fold((0, 0, 0), |acc, r| {
            (acc.0 + r.totals.non_2xx, acc.1 + r.totals.errors, acc.2 + r.totals.unsent)
        });
        (format!("{non} / {err} / {unsent}"), non + err + unsent == 0)
    };
    let (baseline_failures, baseline_clean) = failures(&[bs, br]);
    let cpwatch_all: Vec<&RunReport> = results.cpwatch_runs().collect();
    let (cpwatch_failures, cpwatch_clean) = failures(&cpwatch_all);
    row(&[
        "non-2xx / errors / unsent, all phases",
        &baseline_failures,
        &cpwatch_failures,
        "",
        "none",
        yes_no(baseline_clean && cpwatch_clean),
    ]);
    row(&["server CPU at saturation (cores)", &cores(bs, true), &cores(cs, true), "", "", ""]);
    let per_delivery = |r: &RunReport| {
        r.server
            .as_ref()
            .and_then(|s| s.cpu)
            .filter(|_| r.measured.ok_per_s > 0.0)
            .map(|c| c.cores / r.measured.ok_per_s * 1e6)
    };
    let (base_us, cpwatch_us) = (per_delivery(bs), per_delivery(cs));
    let us = |v: Option<f64>| v.map_or_else(|| "?".to_string(), |v| format!("{v:.0}"));
    row(&[
        "server CPU per delivery at saturation (µs; less sensitive to the noise)",
        &us(base_us),
        &us(cpwatch_us),
        &match (base_us, cpwatch_us) {
            (Some(b), Some(c)) if b > 0.0 => format!("{:.1}×", c / b),
            _ => String::new(),
        },
        "",
        "",
    ]);
    row(&["load generator CPU at saturation (cores)", &cores(bs, false), &cores(cs, false), "", "", ""]);
    row(&[
        "other processes' CPU at saturation (cores, noise)",
        &other_cores(bs),
        &other_cores(cs),
        "",
        "",
        "",
    ]);
    row(&[
        "other processes' CPU at fixed rate (cores, noise)",
        &other_cores(br),
        &other_cores(cr),
        "",
        "",
        "",
    ]);
    let rss = |r: &RunReport| {
        r.server.as_ref().map_or_else(
            || "?".to_string(),
            |s| {
                format!(
                    "{} → {} (max {})",
                    mib(s.rss.first_kib()),
                    mib(s.rss.last_kib()),
                    mib(s.rss.max_kib())
                )
            },
        )
    };
    row(&["server RSS during saturation, first → last (MiB)", &rss(bs), &rss(cs), "", "", ""]);
    match (&results.cpwatch_long, &memory) {
        (Some(long), Some(m)) => row(&[
            &format!(
                "cpwatch RSS over {:.0} min at {}: after 1 min → end (MiB)",
                long.duration_s / 60.0,
                rate_label(long)
            ),
            "",
            &format!("{} → {} (max {})", mib(Some(m.warm_kib)), mib(Some(m.last_kib)), mib(Some(m.max_kib))),
            "",
            "flat over 10 min",
            yes_no(m.flat),
        ]),
        _ => row(&[
            "memory over a 10-minute run",
            "",
            "not run (quick run)",
            "",
            "flat over 10 min",
            "not judged: `bash scripts/bench.sh --long`",
        ]),
    }
    row(&[
        "deliveries stored = 2xx answers (all cpwatch phases)",
        "",
        &format!(
            "{} stored, {acknowledged} acknowledged{}",
            stored.map_or_else(|| "?".to_string(), |s| s.to_string()),
            if duplicates > 0 { format!(", {duplicates} duplicates") } else { String::new() }
        ),
        "",
        "equal",
        yes_no(stored_matches),
    ]);

    let mut md = String::new();
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Written by `{command}` on {date}; run the same command to regenerate it (`--long` adds the \
         10-minute memory run). The figures come from one run on one machine: compare the two columns \
         with each other, not with another machine's figures.\n"
    );
    let _ = writeln!(md, "## Machine\n");
    for line in results.machine.lines().filter(|l| !l.trim().is_empty()) {
        let _ = writeln!(md, "- {}", line.trim());
    }
    if let Some(probe) = &results.fsync {
        let _ = writeln!(
            md,
            "- durable write on the data directory's disk (4 KiB append + fdatasync, {} times): \
             p50 {:.2} ms, p99 {:.2} ms, mean {:.2} ms, so at most {} deliveries/s for a receiver \
             that syncs once per delivery",
            probe.latency_ms.count,
            probe.latency_ms.p50,
            probe.latency_ms.p99,
            probe.latency_ms.mean,
            thousands(probe.one_sync_per_delivery_max_per_s)
        );
    }
    let _ = writeln!(md, "- exact command: `{command}`");
    let _ = writeln!(md);
    let _ = writeln!(md, "## Receiver: cpwatch serve against the no-op baseline\n");
    let _ = writeln!(
        md,
        "Both servers get the same signed `upload completed` deliveries (unique delivery and upload ids) \
         from `cpwatch-bench load` over keep-alive HTTP/1.1 on loopback, in the same run. \
         Saturation: {} connections on {} generator thread(s), closed loop, {:.0} s after a {:.0} s warm-up. \
         Fixed rate: {} connections, \
         open loop at {} for {:.0} s, latency measured from each delivery's scheduled send time \
         (a stall delays every delivery due behind it, and shows). cpwatch runs with a passcode \
         configured, so every delivery is verified (base64 HMAC-SHA256) and committed to SQLite \
         (WAL, `synchronous=FULL`) before its 200.\n",
        bs.connections,
        bs.generator_threads,
        bs.duration_s,
        bs.warmup_s,
        br.connections,
        rate_label(br),
        br.duration_s
    );
    md.push_str(&table);
    let _ = writeln!(md);

    let _ = writeln!(md, "## Is the load generator the bottleneck?\n");
    let _ = writeln!(
        md,
        "| generator against the no-op baseline | deliveries/s | generator CPU (cores) | server CPU (cores) | other processes (cores) |"
    );
    let _ = writeln!(md, "| --- | ---: | ---: | ---: | ---: |");
    for run in std::iter::once(bs).chain(&results.generator_checks) {
        let _ = writeln!(
            md,
            "| cpwatch-bench, {} connections, {} thread(s) | {} | {} | {} | {} |",
            run.connections,
            run.generator_threads,
            thousands(run.measured.ok_per_s),
            cores(run, false),
            cores(run, true),
            other_cores(run)
        );
    }
    match results.wrk.as_deref().map(parse_wrk) {
        Some(Some(wrk)) => {
            let _ = writeln!(
                md,
                "| Debian's `wrk`{} | {} | | | |",
                wrk.command.as_deref().map_or_else(String::new, |c| format!(" (`{c}`)")),
                thousands(wrk.requests_per_s)
            );
            if wrk.non_2xx + wrk.socket_errors > 0 {
                let _ = writeln!(
                    md,
                    "\n`wrk` saw {} non-2xx answers and {} socket errors.",
                    wrk.non_2xx, wrk.socket_errors
                );
            }
        }
        Some(None) => {
            let _ = writeln!(md, "| Debian's `wrk` | output not understood (see wrk-baseline.txt) | | | |");
        }
        None => {
            let _ = writeln!(md, "| Debian's `wrk` | not run (not installed) | | | |");
        }
    }
    let _ = writeln!(
        md,
        "\nOn two cores the generator and the server share the CPU, so the generator's own cost \
         leaves less for the server: the baseline's figure depends on how much CPU the generator \
         needs and gets, the cpwatch figure hardly (its generator needs a few percent of a core). \
         A C generator (`wrk`: one pre-formatted request, no signing, no per-request objects) \
         shows how much higher the ceiling goes with a cheaper client; the table's second row \
         rates cpwatch against the highest figure.\n"
    );

    if let Some(long) = &results.cpwatch_long {
        let _ = writeln!(md, "## cpwatch memory over the long run\n");
        let _ = writeln!(
            md,
            "{:.0} s at {} ({} connections): {} deliveries acknowledged; p99 {:.2} ms, max {:.2} ms \
             from due time. Resident memory (VmRSS, sampled every few seconds) and latency, minute by minute:\n",
            long.duration_s,
            rate_label(long),
            long.connections,
            long.totals.ok_2xx,
            long.measured.latency_ms.p99,
            long.measured.latency_ms.max
        );
        let _ = writeln!(
            md,
            "| minute | RSS at its end (MiB) | p50 (ms) | p99 (ms) | max (ms) |\n| ---: | ---: | ---: | ---: | ---: |"
        );
        let samples = long.server.as_ref().map(|s| s.rss.samples.as_slice()).unwrap_or_default();
        let minutes = (long.duration_s / 60.0).ceil() as usize;
        for minute in 0..minutes {
            // RSS at the end of the minute: the last sample taken before then (the
            // samples count from the warm-up's start).
            let end = long.warmup_s + (minute as f64 + 1.0) * 60.0;
            let rss = samples.iter().take_while(|(t, _)| *t <= end + 1e-9).last().map(|s| s.1);
            let cell = |f: fn(&crate::results::Latency) -> f64| {
                long.measured
                    .latency_by_minute
                    .get(minute)
                    .map_or_else(|| "?".to_string(), |l| format!("{:.2}", f(l)))
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} |",
                minute + 1,
                mib(rss),
                cell(|l| l.p50),
                cell(|l| l.p99),
                cell(|l| l.max)
            );
        }
        if let Some(m) = &memory {
            let _ = writeln!(
                md,
                "\nFlat means: from the first sample after {:.0} s to the last, RSS grew by at most \
                 {:.0} % or {} MiB, whichever is more. Here: {} → {} MiB: {}.\n",
                MEMORY_WARMUP_S.min(long.duration_s / 10.0),
                FLAT_GROWTH_RATIO * 100.0,
                FLAT_GROWTH_KIB / 1024,
                mib(Some(m.warm_kib)),
                mib(Some(m.last_kib)),
                if m.flat { "flat" } else { "NOT flat" }
            );
        }
    }

    let _ = writeln!(md, "## Dashboard (issue 5, item 3)\n");
    match &results.dashboard {
        Some(fragment) => {
            let _ = writeln!(md, "{}\n", fragment.trim_end());
        }
        None => {
            let _ = writeln!(
                md,
                "Not measured yet. The dashboard benchmark writes its Markdown fragment to \
                 `dashboard.md` in the results directory and `scripts/bench.sh` puts it here.\n\n\
                 | query (1M deliveries, 20 studies) | median (ms) | p95 (ms) |\n| --- | ---: | ---: |\n\
                 | uploads list with filters | – | – |\n| overview | – | – |\n| export of one study | – | – |\n"
            );
        }
    }
    let _ = writeln!(md, "{NOTES_MARKER}");
    if let Some(notes) = notes {
        md.push_str(notes);
    }
    Rendered { markdown: md, table, stored_matches }
}

/// Renders `results_dir` into `out`, keeping the notes of an existing `out`.
pub fn write(results_dir: &Path, out: &Path, command: &str, date: &str) -> anyhow::Result<Rendered> {
    let results = Results::load(results_dir)?;
    let existing = read_optional(out)?;
    let notes = existing.as_deref().and_then(|text| {
        text.find(NOTES_MARKER).map(|at| text[at + NOTES_MARKER.len()..].trim_start_matches('\n'))
    });
    let notes = notes.map(|n| format!("\n{n}"));
    let rendered = render(&results, command, date, notes.as_deref());
    std::fs::write(out, &rendered.markdown).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(rendered)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procfs::RssSamples;
    use crate::results::{Counts, Latency, Measured, Mode, ServerUse};

    fn run(rss: Vec<(f64, u64)>) -> RunReport {
        RunReport {
            label: "t".into(),
            url: "http://127.0.0.1:1/webhook".into(),
            mode: Mode::FixedRate,
            connections: 1,
            generator_threads: 1,
            warmup_s: 0.0,
            duration_s: 600.0,
            target_rate: Some(500.0),
            prebuilt: 0,
            exhausted: false,
            totals: Counts::default(),
            measured: Measured {
                answered: 0,
                ok_2xx: 0,
                non_2xx: 0,
                errors: 0,
                ok_per_s: 0.0,
                latency_ms: Latency::default(),
                pacer_lag_ms: None,
                latency_by_minute: Vec::new(),
            },
            error_examples: Vec::new(),
            generator_cpu: None,
            machine_cpu: None,
            server: Some(ServerUse { pid: 1, cpu: None, rss: RssSamples { samples: rss } }),
        }
    }

    #[test]
    fn memory_that_settles_after_the_first_minute_is_flat() {
        let settled =
            run(vec![(0.0, 8_000), (30.0, 30_000), (60.0, 40_000), (300.0, 41_000), (600.0, 41_500)]);
        assert!(memory_verdict(&settled).expect("a verdict").flat, "start-up growth is not a leak");
    }

    #[test]
    fn memory_that_keeps_growing_is_not_flat() {
        let leaking = run(vec![(0.0, 8_000), (60.0, 40_000), (300.0, 60_000), (600.0, 90_000)]);
        assert!(!memory_verdict(&leaking).expect("a verdict").flat);
    }

    #[test]
    fn wrk_output_is_read_for_rate_and_failures() {
        let text = "Running 15s test @ http://127.0.0.1:1/webhook\n  1 threads and 64 connections\n\
                    \x20 184000 requests in 15.00s, 20.00MB read\n\
                    \x20 Socket errors: connect 0, read 2, write 0, timeout 1\n\
                    \x20 Non-2xx or 3xx responses: 4\nRequests/sec:  12266.67\nTransfer/sec:      1.33MB\n";
        let wrk = parse_wrk(text).expect("understood");
        assert_eq!(wrk.requests_per_s, 12266.67);
        assert_eq!(wrk.non_2xx, 4);
        assert_eq!(wrk.socket_errors, 3);
        assert_eq!(parse_wrk("wrk: command not found"), None);
    }

    #[test]
    fn big_numbers_get_thousands_separators() {
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1000.0), "1,000");
    }
}
