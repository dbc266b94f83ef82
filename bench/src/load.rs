//! The load generator. It signs every delivery before the clock starts, opens C
//! keep-alive HTTP/1.1 connections on loopback (raw hyper client connections, one task
//! each) and drives them in one of two ways:
//!
//! - saturation (closed loop): each connection sends its next delivery as soon as the
//!   previous one is answered, for the whole duration: the receiver's ceiling;
//! - fixed rate (open loop): delivery `i` is due at `start + i / R` whatever happened
//!   before. A pacer thread releases deliveries when they fall due and a free connection
//!   sends them; latency counts from the *due* time, so when the receiver stalls, the
//!   deliveries that queue up behind the stall show it (no coordinated omission).
//!
//! Everything is bounded: the run's duration, a timeout per request, and a drain time
//! after which deliveries still waiting are counted as unsent.

use std::net::{SocketAddr, ToSocketAddrs as _};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bytes::Bytes;
use cpwatch::receive;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, HOST, USER_AGENT};
use hyper::{Method, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{oneshot, Semaphore};
use tokio::task::JoinSet;

use crate::deliveries::{self, Delivery};
use crate::procfs::{self, CpuMark, CpuUse, Whose};
use crate::results::{Counts, Latency, Measured, Mode, RunReport, ServerUse};

const EVENT: HeaderName = HeaderName::from_static(receive::EVENT_HEADER);
const DELIVERY: HeaderName = HeaderName::from_static(receive::DELIVERY_HEADER);
const WEBHOOK: HeaderName = HeaderName::from_static(receive::WEBHOOK_HEADER);
const SIGNATURE: HeaderName = HeaderName::from_static(receive::SIGNATURE_HEADER);
const CLIENT_CERT: HeaderName = HeaderName::from_static("x-client-cert-used");

/// After a failed request, a pause before the next one, so that a receiver that went
/// away is not hammered with connection attempts (and the error count stays readable).
const ERROR_BACKOFF: Duration = Duration::from_millis(10);
/// How many error messages the report keeps as examples.
const ERROR_EXAMPLES: usize = 5;

type Sender = SendRequest<Full<Bytes>>;

#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub label: String,
    pub url: String,
    pub passcode: Vec<u8>,
    /// `None`: saturation; `Some(r)`: fixed rate of `r` deliveries per second.
    pub rate: Option<f64>,
    pub warmup: Duration,
    pub duration: Duration,
    pub connections: usize,
    /// Runtime worker threads; 1 runs everything on one thread (plus the pacer).
    pub threads: usize,
    pub timeout: Duration,
    /// How many deliveries a saturation run pre-builds at most.
    pub max_requests: usize,
    pub first_upload_id: u64,
    pub webhook_id: String,
    /// The server's process, for its CPU use and memory.
    pub pid: Option<u32>,
    pub rss_interval: Duration,
}

/// Where the deliveries go: a loopback address only, since a benchmark here must never
/// send traffic off this machine.
#[derive(Debug, Clone)]
struct Target {
    addr: SocketAddr,
    path: Uri,
    host: HeaderValue,
}

impl Target {
    fn parse(url: &str) -> anyhow::Result<Target> {
        let uri: Uri = url.parse().with_context(|| format!("{url} is not a URL"))?;
        if uri.scheme_str() != Some("http") {
            bail!("{url}: only http:// URLs (the benchmark measures the receiver, not TLS)");
        }
        let authority = uri.authority().with_context(|| format!("{url} has no host"))?;
        let host = authority.host().trim_start_matches('[').trim_end_matches(']');
        let port = authority.port_u16().unwrap_or(80);
        let addr = (host, port)
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve {host}"))?
            .next()
            .with_context(|| format!("{host} has no address"))?;
        if !addr.ip().is_loopback() {
            bail!("{url} is not on loopback: the load generator only targets this machine");
        }
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        Ok(Target {
            addr,
            path: path.parse().with_context(|| format!("{path} is not a request path"))?,
            host: HeaderValue::from_str(authority.as_str()).context("the host is not a header value")?,
        })
    }
}

/// What every connection task shares.
struct Plan {
    target: Target,
    deliveries: Vec<Delivery>,
    next: AtomicUsize,
    webhook_id: HeaderValue,
    start: Instant,
    measure_from: Instant,
    deadline: Instant,
    /// Fixed rate: deliveries not sent by then are given up and counted as unsent.
    give_up: Instant,
    timeout: Duration,
    /// Fixed rate only: a permit per delivery that has fallen due.
    due: Option<(f64, Arc<Semaphore>)>,
}

impl Plan {
    fn due_at(&self, index: usize, rate: f64) -> Instant {
        self.start + Duration::from_secs_f64(index as f64 / rate)
    }

    fn request(&self, delivery: &Delivery) -> hyper::Request<Full<Bytes>> {
        let mut request = hyper::Request::new(Full::new(delivery.body.clone()));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.target.path.clone();
        // What CentrePoint sends (see tests/fixtures/upload-completed.http), signed.
        let headers = request.headers_mut();
        headers.insert(HOST, self.target.host.clone());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(USER_AGENT, HeaderValue::from_static("ActiGraph-Hookshot/1.0"));
        headers.insert(EVENT, HeaderValue::from_static("upload"));
        headers.insert(DELIVERY, delivery.delivery_id.clone());
        headers.insert(WEBHOOK, self.webhook_id.clone());
        headers.insert(SIGNATURE, delivery.signature.clone());
        headers.insert(CLIENT_CERT, HeaderValue::from_static("false"));
        request
    }
}

/// One connection task's counts, merged at the end.
#[derive(Default)]
struct Tally {
    totals: Counts,
    measured_ok: u64,
    measured_non_2xx: u64,
    measured_errors: u64,
    latencies_us: Vec<u32>,
    /// The minute of the measured window each latency belongs to (by due time).
    minutes: Vec<u32>,
    last_done: Option<Instant>,
    exhausted: bool,
    errors: Vec<String>,
}

impl Tally {
    fn record(&mut self, plan: &Plan, due: Instant, done: Instant, outcome: &Result<u16, String>) {
        self.totals.sent += 1;
        match outcome {
            Ok(status) => {
                *self.totals.statuses.entry(*status).or_default() += 1;
                if (200..300).contains(status) {
                    self.totals.ok_2xx += 1;
                } else {
                    self.totals.non_2xx += 1;
                }
            }
            Err(e) => {
                self.totals.errors += 1;
                if self.errors.len() < ERROR_EXAMPLES {
                    self.errors.push(e.clone());
                }
            }
        }
        // Saturation counts what was answered inside the window; fixed rate counts what
        // fell due inside it, however late its answer came.
        let measured = match plan.due {
            None => done >= plan.measure_from && done <= plan.deadline,
            Some(_) => due >= plan.measure_from,
        };
        if !measured {
            return;
        }
        match outcome {
            Ok(status) if (200..300).contains(status) => self.measured_ok += 1,
            Ok(_) => self.measured_non_2xx += 1,
            Err(_) => self.measured_errors += 1,
        }
        if outcome.is_ok() {
            let micros = done.saturating_duration_since(due).as_micros();
            self.latencies_us.push(u32::try_from(micros).unwrap_or(u32::MAX));
            let minute = due.saturating_duration_since(plan.measure_from).as_secs() / 60;
            self.minutes.push(u32::try_from(minute).unwrap_or(u32::MAX));
            self.last_done = self.last_done.max(Some(done));
        }
    }

    fn merge(&mut self, other: Tally) {
        self.totals.sent += other.totals.sent;
        self.totals.ok_2xx += other.totals.ok_2xx;
        self.totals.non_2xx += other.totals.non_2xx;
        self.totals.errors += other.totals.errors;
        self.totals.unsent += other.totals.unsent;
        for (status, n) in other.totals.statuses {
            *self.totals.statuses.entry(status).or_default() += n;
        }
        self.measured_ok += other.measured_ok;
        self.measured_non_2xx += other.measured_non_2xx;
        self.measured_errors += other.measured_errors;
        self.latencies_us.extend(other.latencies_us);
        self.minutes.extend(other.minutes);
        self.last_done = self.last_done.max(other.last_done);
        self.exhausted |= other.exhausted;
        for e in other.errors {
            if self.errors.len() < ERROR_EXAMPLES {
                self.errors.push(e);
            }
        }
    }
}

/// Builds the deliveries, runs the load and reports. Blocks for the whole run.
pub fn run(options: &LoadOptions) -> anyhow::Result<RunReport> {
    if options.connections == 0 {
        bail!("at least one connection is needed");
    }
    let target = Target::parse(&options.url)?;
    let count = match options.rate {
        Some(rate) if rate > 0.0 && rate.is_finite() => {
            ((options.warmup + options.duration).as_secs_f64() * rate).ceil() as usize
        }
        Some(rate) => bail!("the rate must be a positive number of deliveries per second, not {rate}"),
        None => options.max_requests,
    };
    let built = Instant::now();
    let deliveries = deliveries::build(count, options.first_upload_id, &options.passcode)?;
    eprintln!(
        "{}: built and signed {count} deliveries in {:.1} s",
        options.label,
        built.elapsed().as_secs_f64()
    );
    let runtime = if options.threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(options.threads).enable_all().build()
    }
    .context("cannot start the async runtime")?;
    runtime.block_on(drive(options, target, deliveries))
}

async fn connect(target: &Target) -> Result<Sender, String> {
    let stream = TcpStream::connect(target.addr).await.map_err(|e| format!("connect: {e}"))?;
    // Small request/response exchanges: no Nagle delay, as the receiver does on its side.
    stream.set_nodelay(true).map_err(|e| format!("set_nodelay: {e}"))?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    // The connection's I/O runs in its own task; it ends when the sender is dropped.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// Sends one delivery on the task's connection (opening a new one if it broke) and
/// reads the whole answer, so the connection is free for the next.
async fn exchange(plan: &Plan, connection: &mut Option<Sender>, delivery: &Delivery) -> Result<u16, String> {
    let sender = match connection {
        Some(sender) => sender,
        None => connection.insert(connect(&plan.target).await?),
    };
    sender.ready().await.map_err(|e| format!("connection: {e}"))?;
    let response = sender.send_request(plan.request(delivery)).await.map_err(|e| format!("request: {e}"))?;
    let status = response.status().as_u16();
    response.into_body().collect().await.map_err(|e| format!("response body: {e}"))?;
    Ok(status)
}

async fn connection_task(plan: Arc<Plan>, mut connection: Option<Sender>) -> Tally {
    let mut tally = Tally::default();
    loop {
        let (index, due) = match &plan.due {
            None => {
                if Instant::now() >= plan.deadline {
                    break;
                }
                let index = plan.next.fetch_add(1, Ordering::Relaxed);
                if index >= plan.deliveries.len() {
                    tally.exhausted = true;
                    break;
                }
                (index, Instant::now())
            }
            Some((rate, permits)) => {
                match permits.acquire().await {
                    Ok(permit) => permit.forget(),
                    Err(_) => break,
                }
                let index = plan.next.fetch_add(1, Ordering::Relaxed);
                if index >= plan.deliveries.len() {
                    break;
                }
                if Instant::now() >= plan.give_up {
                    tally.totals.unsent += 1;
                    continue;
                }
                (index, plan.due_at(index, *rate))
            }
        };
        let outcome = match tokio::time::timeout(
            plan.timeout,
            exchange(&plan, &mut connection, &plan.deliveries[index]),
        )
        .await
        {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("no answer within {:?}", plan.timeout)),
        };
        tally.record(&plan, due, Instant::now(), &outcome);
        if outcome.is_err() {
            // The connection's state is unknown after a failure: start a fresh one.
            connection = None;
            tokio::time::sleep(ERROR_BACKOFF).await;
        }
    }
    tally
}

/// Releases fixed-rate deliveries as they fall due, from a thread of its own so that its
/// timing does not depend on the runtime's millisecond timer or on a busy connection
/// task. Returns how late each release was, in microseconds.
fn pace(start: Instant, rate: f64, total: usize, permits: &Semaphore, wake_at_end: usize) -> Vec<u32> {
    let mut lag = Vec::with_capacity(total);
    let mut released = 0;
    while released < total {
        let next_due = start + Duration::from_secs_f64(released as f64 / rate);
        let now = Instant::now();
        if now < next_due {
            std::thread::sleep(next_due - now);
            continue;
        }
        // Everything due by now goes at once: a late wake-up must not spread the
        // backlog over later slots, which would hide the lateness.
        let due_by_now = (((now - start).as_secs_f64() * rate).floor() as usize + 1).min(total);
        for index in released..due_by_now {
            let due = start + Duration::from_secs_f64(index as f64 / rate);
            lag.push(u32::try_from(now.saturating_duration_since(due).as_micros()).unwrap_or(u32::MAX));
        }
        permits.add_permits(due_by_now - released);
        released = due_by_now;
    }
    // One more permit per connection task: each then sees that nothing is left and ends.
    permits.add_permits(wake_at_end);
    lag
}

async fn drive(
    options: &LoadOptions,
    target: Target,
    deliveries: Vec<Delivery>,
) -> anyhow::Result<RunReport> {
    let mut connections = Vec::with_capacity(options.connections);
    for _ in 0..options.connections {
        let sender = connect(&target).await.map_err(|e| anyhow::anyhow!("{}: {e}", options.url))?;
        connections.push(sender);
    }
    let total = deliveries.len();
    let start = Instant::now();
    let measure_from = start + options.warmup;
    let deadline = measure_from + options.duration;
    let permits = Arc::new(Semaphore::new(0));
    let plan = Arc::new(Plan {
        target,
        deliveries,
        next: AtomicUsize::new(0),
        webhook_id: HeaderValue::from_str(&options.webhook_id)
            .context("the webhook id is not a header value")?,
        start,
        measure_from,
        deadline,
        give_up: deadline + options.timeout,
        timeout: options.timeout,
        due: options.rate.map(|rate| (rate, permits.clone())),
    });

    let pacer = options.rate.map(|rate| {
        let permits = permits.clone();
        let wake = options.connections;
        std::thread::spawn(move || pace(start, rate, total, &permits, wake))
    });
    let (stop_sampling, stopped) = oneshot::channel::<()>();
    let sampler = options.pid.map(|pid| {
        let interval = options.rss_interval;
        tokio::spawn(procfs::sample_rss(pid, interval, start, async move {
            let _ = stopped.await;
        }))
    });
    let pid = options.pid;
    let cpu = tokio::spawn(async move {
        tokio::time::sleep_until(measure_from.into()).await;
        let marks = [Some(Whose::ThisProcess), pid.map(Whose::Process), Some(Whose::Machine)]
            .map(|whose| whose.map(CpuMark::now));
        tokio::time::sleep_until(deadline.into()).await;
        marks.map(|mark| match mark.map(|m| m.and_then(|m| m.since())) {
            Some(Ok(used)) => Some(used),
            Some(Err(e)) => {
                eprintln!("CPU use not measured: {e}");
                None
            }
            None => None,
        })
    });

    let mut tasks = JoinSet::new();
    for connection in connections {
        tasks.spawn(connection_task(plan.clone(), Some(connection)));
    }
    let mut tally = Tally::default();
    while let Some(joined) = tasks.join_next().await {
        tally.merge(joined.context("a connection task failed")?);
    }
    let [generator_cpu, server_cpu, machine_cpu] = cpu.await.context("the CPU measurement failed")?;
    let _ = stop_sampling.send(());
    let rss = match sampler {
        Some(handle) => Some(handle.await.context("the memory sampler failed")?),
        None => None,
    };
    let pacer_lag = match pacer {
        Some(handle) => {
            let lag = tokio::task::spawn_blocking(move || handle.join())
                .await
                .context("the pacer could not be joined")?
                .map_err(|_| anyhow::anyhow!("the pacer thread panicked"))?;
            // Only deliveries due inside the measured window.
            let skip = options.rate.map_or(0, |r| (options.warmup.as_secs_f64() * r).ceil() as usize);
            Some(Latency::from_micros(lag.into_iter().skip(skip).collect()))
        }
        None => None,
    };

    let window = options.duration.as_secs_f64();
    let ok_per_s = match options.rate {
        // A run that ran out of deliveries is rated over the time it actually had them.
        None if tally.exhausted => {
            let span =
                tally.last_done.map_or(window, |t| t.saturating_duration_since(measure_from).as_secs_f64());
            tally.measured_ok as f64 / span.clamp(f64::EPSILON, window)
        }
        None => tally.measured_ok as f64 / window,
        // Deliveries due in the window over the time it took to answer them: equal to
        // the target rate when the receiver keeps up, lower when it falls behind.
        Some(_) => {
            let span =
                tally.last_done.map_or(window, |t| t.saturating_duration_since(measure_from).as_secs_f64());
            tally.measured_ok as f64 / span.max(window)
        }
    };
    let errors = std::mem::take(&mut tally.errors);
    for e in &errors {
        eprintln!("{}: error: {e}", options.label);
    }
    let report = RunReport {
        label: options.label.clone(),
        url: options.url.clone(),
        mode: if options.rate.is_some() { Mode::FixedRate } else { Mode::Saturation },
        connections: options.connections,
        generator_threads: options.threads.max(1),
        warmup_s: options.warmup.as_secs_f64(),
        duration_s: window,
        target_rate: options.rate,
        prebuilt: total,
        exhausted: tally.exhausted,
        measured: Measured {
            answered: tally.measured_ok + tally.measured_non_2xx,
            ok_2xx: tally.measured_ok,
            non_2xx: tally.measured_non_2xx,
            errors: tally.measured_errors,
            ok_per_s,
            latency_by_minute: by_minute(&tally.latencies_us, &tally.minutes, window),
            latency_ms: Latency::from_micros(std::mem::take(&mut tally.latencies_us)),
            pacer_lag_ms: pacer_lag,
        },
        totals: tally.totals,
        error_examples: errors,
        generator_cpu,
        machine_cpu,
        server: pid.map(|pid| ServerUse { pid, cpu: server_cpu, rss: rss.unwrap_or_default() }),
    };
    Ok(report)
}

/// Latency minute by minute, for runs long enough that a drift would matter (a
/// receiver slowing down as its database grows shows here and not in the overall p99).
fn by_minute(micros: &[u32], minutes: &[u32], window_s: f64) -> Vec<Latency> {
    if window_s < 120.0 {
        return Vec::new();
    }
    let count = minutes.iter().max().map_or(0, |&m| m as usize + 1);
    let mut buckets = vec![Vec::new(); count];
    for (&latency, &minute) in micros.iter().zip(minutes) {
        buckets[minute as usize].push(latency);
    }
    buckets.into_iter().map(Latency::from_micros).collect()
}

/// The run in a few human lines (stderr), next to the JSON on stdout.
pub fn describe(report: &RunReport) -> String {
    let m = &report.measured;
    let l = &m.latency_ms;
    let mut lines = vec![match report.mode {
        Mode::Saturation => format!(
            "{}: saturation, {} connections, {:.0} s: {:.0} deliveries/s answered 2xx",
            report.label, report.connections, report.duration_s, m.ok_per_s
        ),
        Mode::FixedRate => format!(
            "{}: fixed rate {:.0}/s, {} connections, {:.0} s: achieved {:.0}/s",
            report.label,
            report.target_rate.unwrap_or_default(),
            report.connections,
            report.duration_s,
            m.ok_per_s
        ),
    }];
    lines.push(format!(
        "  latency{}: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms ({} answers)",
        if report.mode == Mode::FixedRate { " from due time" } else { "" },
        l.p50,
        l.p90,
        l.p99,
        l.p999,
        l.max,
        l.count
    ));
    let t = &report.totals;
    lines.push(format!(
        "  all requests (warm-up included): {} sent, {} 2xx, {} non-2xx, {} errors, {} unsent{}",
        t.sent,
        t.ok_2xx,
        t.non_2xx,
        t.errors,
        t.unsent,
        if report.exhausted { "; RAN OUT of pre-built deliveries (raise --max-requests)" } else { "" }
    ));
    if let Some(lag) = &m.pacer_lag_ms {
        lines.push(format!("  pacer lateness: p99 {:.2} ms, max {:.2} ms", lag.p99, lag.max));
    }
    let cores = |c: Option<CpuUse>| c.map_or_else(|| "?".to_string(), |c| format!("{:.2}", c.cores));
    lines.push(format!(
        "  CPU in the window (cores): generator {}, server {}, whole machine {}",
        cores(report.generator_cpu),
        cores(report.server.as_ref().and_then(|s| s.cpu)),
        cores(report.machine_cpu)
    ));
    if let Some(server) = &report.server {
        let mib = |k: Option<u64>| k.map_or_else(|| "?".to_string(), |k| format!("{:.1}", k as f64 / 1024.0));
        lines.push(format!(
            "  server RSS (MiB): first {}, last {}, max {} ({} samples)",
            mib(server.rss.first_kib()),
            mib(server.rss.last_kib()),
            mib(server.rss.max_kib()),
            server.rss.samples.len()
        ));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_runs_get_latency_minute_by_minute() {
        assert!(by_minute(&[1000, 2000], &[0, 1], 60.0).is_empty(), "a short run has one figure only");
        let minutes = by_minute(&[1000, 3000, 50_000], &[0, 0, 2], 180.0);
        assert_eq!(minutes.len(), 3);
        assert_eq!(minutes[0].count, 2);
        assert_eq!(minutes[1].count, 0, "a minute without answers is still a row");
        assert_eq!(minutes[2].max, 50.0);
    }

    #[test]
    fn only_loopback_http_urls_are_targets() {
        assert!(Target::parse("http://127.0.0.1:8787/webhook").is_ok());
        assert!(Target::parse("http://[::1]:8787/webhook").is_ok());
        assert!(Target::parse("http://localhost:8787/webhook").is_ok());
        let refused = Target::parse("http://192.0.2.1:8787/webhook").expect_err("not loopback");
        assert!(refused.to_string().contains("loopback"), "{refused}");
        assert!(Target::parse("https://127.0.0.1/webhook").is_err(), "no TLS");
    }

    #[test]
    fn the_request_carries_centrepoint_headers_and_the_signed_body() {
        let target = Target::parse("http://127.0.0.1:9/webhook").expect("target");
        let delivery = deliveries::build(1, 5, b"k").expect("one delivery").remove(0);
        let now = Instant::now();
        let plan = Plan {
            target,
            deliveries: Vec::new(),
            next: AtomicUsize::new(0),
            webhook_id: HeaderValue::from_static("15"),
            start: now,
            measure_from: now,
            deadline: now,
            give_up: now,
            timeout: Duration::from_secs(1),
            due: None,
        };
        let request = plan.request(&delivery);
        assert_eq!(request.method(), Method::POST);
        assert_eq!(request.uri(), "/webhook");
        let h = request.headers();
        assert_eq!(h[HOST], "127.0.0.1:9");
        assert_eq!(h[EVENT], "upload");
        assert_eq!(h[WEBHOOK], "15");
        assert_eq!(h[DELIVERY], delivery.delivery_id);
        assert_eq!(h[SIGNATURE], delivery.signature);
    }

    /// A correctness check of the generator against the real baseline server over a
    /// real socket: every request is answered 2xx and counted once. No timing asserted.
    #[test]
    fn a_short_fixed_rate_run_against_the_baseline_is_answered_and_counted() {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
        let addr = listener.local_addr().expect("address");
        let (stop, stopped) = oneshot::channel::<()>();
        let server = runtime.spawn(receive::serve(
            listener,
            crate::noop::router(),
            crate::noop::serve_options(),
            async move {
                let _ = stopped.await;
            },
        ));
        let options = LoadOptions {
            label: "smoke".into(),
            url: format!("http://{addr}/webhook"),
            passcode: b"k".to_vec(),
            rate: Some(200.0),
            warmup: Duration::from_millis(100),
            duration: Duration::from_millis(400),
            connections: 4,
            threads: 1,
            timeout: Duration::from_secs(10),
            max_requests: 0,
            first_upload_id: 1,
            webhook_id: "15".into(),
            pid: Some(std::process::id()),
            rss_interval: Duration::from_millis(100),
        };
        let report = std::thread::spawn(move || run(&options)).join().expect("no panic").expect("a report");
        let _ = stop.send(());
        let _ = runtime.block_on(server);
        assert_eq!(report.prebuilt, 100, "0.5 s at 200/s");
        assert_eq!(report.totals.sent, 100, "every due delivery is sent once");
        assert_eq!(report.totals.ok_2xx, 100, "the baseline answers every delivery 200");
        assert_eq!(report.totals.errors + report.totals.non_2xx + report.totals.unsent, 0);
        assert_eq!(report.measured.latency_ms.count, 80, "the warm-up's 20 are not measured");
        assert!(report.server.is_some_and(|s| !s.rss.samples.is_empty()), "memory was sampled");
    }
}
