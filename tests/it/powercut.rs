//! Durability under power cuts: the real receiver runs with its data directory on a file
//! system that forgets what was not synced (`cpwatch-forgetful`, FUSE). Concurrent
//! senders post uploads of every status, retries of deliveries already acknowledged, and
//! validations; at random moments the receiver is SIGKILLed **and** the power is cut
//! (every unsynced write and directory entry thrown away, the last write sometimes torn
//! at a sector), then the file system is mounted again and the receiver restarted.
//! After each cut: every delivery that was answered 2xx is stored exactly once, the
//! file passes `PRAGMA integrity_check`, every upload's state is the replay of its stored
//! deliveries, and the per-day and per-subject counts equal a recount.
//!
//! `CPWATCH_POWER_CUTS` sets the number of cuts (10 by default; `scripts/soak.sh` runs
//! 100). The second test shows the first can fail: with commits not synced
//! (`CPWATCH_UNSAFE_SYNCHRONOUS=NORMAL`), cuts lose acknowledged deliveries.
//!
//! FUSE must work here (`/dev/fuse`, `fusermount3` from Debian's `fuse3`: `bash
//! scripts/setup.sh base powercut`); without it the tests fail, saying so.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use cpwatch_forgetful::{Mounted, Tear};
use rusqlite::Connection;

use crate::harness::{wait_until, DataDir, Delivery, Jitter};

const SENDERS: usize = 6;
/// Acknowledgements each receiver life gives before its cut, so cuts land while
/// deliveries flow.
const ACKS_PER_LIFE: usize = 20;

/// The data directory on the forgetful file system, with its backing directory.
struct Disk {
    _tmp: tempfile::TempDir,
    backing: PathBuf,
    mnt: PathBuf,
}

impl Disk {
    fn new() -> Disk {
        assert!(
            Path::new("/dev/fuse").exists(),
            "/dev/fuse is missing: the power-cut tests need FUSE (`bash scripts/setup.sh base powercut`)"
        );
        let tmp = tempfile::Builder::new().prefix("cpwatch-powercut-").tempdir().expect("temp dir");
        let (backing, mnt) = (tmp.path().join("backing"), tmp.path().join("mnt"));
        Disk { _tmp: tmp, backing, mnt }
    }

    fn mount(&self) -> Mounted {
        cpwatch_forgetful::mount(&self.backing, &self.mnt).unwrap_or_else(|e| {
            panic!("mount the forgetful file system (needs fusermount3: `bash scripts/setup.sh base powercut`): {e}")
        })
    }
}

/// What a sender had acknowledged: the delivery id and what it was.
type Acked = Arc<Mutex<Vec<(String, &'static str)>>>;

/// Posts deliveries one after another, each retried until acknowledged, and now and then
/// sends an acknowledged one again (CentrePoint's retry of a delivery it thinks failed).
async fn sender(
    index: usize,
    client: reqwest::Client,
    url: Arc<RwLock<String>>,
    stop: Arc<AtomicBool>,
    acked: Acked,
    acks: Arc<AtomicUsize>,
) {
    let mut n = 0usize;
    let mut jitter = Jitter(index as u64 * 7919 + 17);
    'deliveries: while !stop.load(Ordering::Acquire) {
        let id = format!("cut-{index}-{n}");
        let upload = format!("{}{:06}", index + 1, n / 5);
        // Two uploads per five deliveries: one completes, one fails; a validation between.
        let (delivery, kind) = match n % 5 {
            0 => (Delivery::upload(&id, "901", &format!("{upload}1"), "started"), "started"),
            1 => (Delivery::upload(&id, "901", &format!("{upload}1"), "completed"), "completed"),
            2 => (Delivery::validation(&id, &format!("code-{index}-{n}")), "validation"),
            3 => (Delivery::upload(&id, "901", &format!("{upload}2"), "started"), "started"),
            _ => (Delivery::upload(&id, "901", &format!("{upload}2"), "error"), "error"),
        };
        let mut sends = if jitter.next_u64().is_multiple_of(4) { 2 } else { 1 };
        let mut told = false;
        while sends > 0 {
            if stop.load(Ordering::Acquire) {
                break 'deliveries;
            }
            let target = url.read().map(|u| u.clone()).unwrap_or_else(|p| p.into_inner().clone());
            match delivery.try_post(&client, &target).await {
                Ok(reply) if (200..300).contains(&reply.status) => {
                    if !told {
                        acked
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .push((id.clone(), kind));
                        acks.fetch_add(1, Ordering::AcqRel);
                        told = true;
                    }
                    sends -= 1;
                }
                _ => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
        n += 1;
    }
}

/// What one check after a cut found.
struct Found {
    /// Acknowledged deliveries not stored, or stored more than once.
    lost: Vec<String>,
    stored: usize,
}

/// Opens the store as the restarted receiver would (read-write: SQLite recovers the WAL)
/// and checks it against what was acknowledged.
fn check(data: &DataDir, acked: &[(String, &'static str)], cut: usize) -> Found {
    let db = Connection::open(data.db_path()).expect("open the store after the cut");
    db.busy_timeout(Duration::from_secs(30)).expect("busy timeout");
    let integrity: String =
        db.query_row("PRAGMA integrity_check", [], |row| row.get(0)).expect("integrity_check");
    assert_eq!(integrity, "ok", "the database is intact after cut {cut}");
    let tables: i64 = db
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'deliveries'",
            [],
            |row| row.get(0),
        )
        .expect("read the schema");
    if tables == 0 {
        // The store itself did not survive: its creation was never synced.
        let lost = acked.iter().map(|(id, kind)| format!("{id} ({kind}): no store at all")).collect();
        return Found { lost, stored: 0 };
    }
    let mut stored: HashMap<String, i64> = HashMap::new();
    let mut stmt =
        db.prepare("SELECT delivery_id, count(*) FROM deliveries GROUP BY delivery_id").expect("prepare");
    for row in stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?))).expect("query") {
        let (id, count) = row.expect("a row");
        stored.insert(id, count);
    }
    drop(stmt);
    let lost: Vec<String> = acked
        .iter()
        .filter(|(id, _)| stored.get(id).copied() != Some(1))
        .map(|(id, kind)| format!("{id} ({kind}): stored {} times", stored.get(id).copied().unwrap_or(0)))
        .collect();
    let subjects_off: i64 = db
        .query_row(
            "SELECT count(*) FROM subjects s WHERE
                 s.uploads_started != (SELECT count(*) FROM uploads u WHERE u.study_id = s.study_id
                     AND u.subject_id = s.subject_id AND u.status = 'started')
              OR s.uploads_completed != (SELECT count(*) FROM uploads u WHERE u.study_id = s.study_id
                     AND u.subject_id = s.subject_id AND u.status = 'completed')
              OR s.uploads_error != (SELECT count(*) FROM uploads u WHERE u.study_id = s.study_id
                     AND u.subject_id = s.subject_id AND u.status = 'error')",
            [],
            |row| row.get(0),
        )
        .expect("recount the subjects' uploads");
    assert_eq!(subjects_off, 0, "after cut {cut}, every subject's upload counts equal a recount");
    drop(db);
    // The uploads and per-day counts against a replay of the stored deliveries.
    data.assert_uploads_match_replay();
    Found { lost, stored: stored.len() }
}

/// What a run of cuts saw.
struct Report {
    cuts: usize,
    acked: usize,
    /// The first cut after which acknowledged deliveries were missing, and which.
    first_loss: Option<(usize, Vec<String>)>,
    torn: usize,
    unsynced_bytes: u64,
}

/// Runs senders against a receiver on the forgetful file system and cuts its power
/// `cuts` times, checking after each. With `stop_at_loss`, returns at the first loss;
/// otherwise a loss fails the test at once.
async fn run(cuts: usize, env: &'static [(&'static str, &'static str)], stop_at_loss: bool) -> Report {
    let disk = Arc::new(Disk::new());
    let mut data = DataDir::new();
    data.dir = disk.mnt.clone();
    let data = Arc::new(data);
    let fs = disk.mount();
    let first = data.serve_with_env(env);
    let url = Arc::new(RwLock::new(first.url.clone()));
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Acked = Arc::default();
    let acks = Arc::new(AtomicUsize::new(0));
    let client =
        reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build().expect("HTTP client");
    let senders: Vec<_> = (0..SENDERS)
        .map(|i| {
            tokio::spawn(sender(i, client.clone(), url.clone(), stop.clone(), acked.clone(), acks.clone()))
        })
        .collect();

    let controller = {
        let (data, url, acks, acked, disk) =
            (data.clone(), url.clone(), acks.clone(), acked.clone(), disk.clone());
        tokio::task::spawn_blocking(move || {
            let mut jitter = Jitter::seeded();
            eprintln!("power cut jitter seed: {}", jitter.0);
            let (mut server, mut fs) = (Some(first), fs);
            let mut report = Report { cuts: 0, acked: 0, first_loss: None, torn: 0, unsynced_bytes: 0 };
            for cut in 1..=cuts {
                let target = acks.load(Ordering::Acquire) + ACKS_PER_LIFE;
                wait_until(&format!("{ACKS_PER_LIFE} acknowledgements before cut {cut}"), || {
                    acks.load(Ordering::Acquire) >= target
                });
                std::thread::sleep(jitter.millis(150));
                if let Some(server) = server.take() {
                    server.kill();
                }
                let tear = if cut % 2 == 1 { Tear::LastWrite { seed: jitter.next_u64() } } else { Tear::No };
                let lost = fs.cut_power(tear).expect("cut the power");
                report.cuts = cut;
                report.torn += usize::from(lost.torn.is_some_and(|(kept, _)| kept > 0));
                report.unsynced_bytes += lost.bytes;
                fs = disk.mount();
                let so_far = acked.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
                let found = check(&data, &so_far, cut);
                eprintln!(
                    "cut {cut}: {} acknowledged so far, {} stored; this cut dropped {} unsynced bytes in {} files{}{}",
                    so_far.len(),
                    found.stored,
                    lost.bytes,
                    lost.files,
                    if lost.entries_lost { ", and directory entries" } else { "" },
                    lost.torn.map_or(String::new(), |(kept, of)| format!(", tore a write ({kept} of {of} bytes kept)")),
                );
                report.acked = so_far.len();
                if !found.lost.is_empty() {
                    assert!(
                        stop_at_loss,
                        "acknowledged deliveries lost or doubled after power cut {cut}: {:?}",
                        found.lost
                    );
                    report.first_loss = Some((cut, found.lost));
                    break;
                }
                server = Some(data.serve_with_env(env));
                if let Some(server) = &server {
                    *url.write().unwrap_or_else(std::sync::PoisonError::into_inner) = server.url.clone();
                }
            }
            if let Some(server) = server.take() {
                server.kill();
            }
            drop(fs.cut_power(Tear::No));
            report
        })
    };
    let report = controller.await.expect("the cut-and-restart controller");
    stop.store(true, Ordering::Release);
    for sender in senders {
        sender.abort();
        let _ = sender.await;
    }
    report
}

fn cuts() -> usize {
    std::env::var("CPWATCH_POWER_CUTS").ok().and_then(|n| n.parse().ok()).unwrap_or(10)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_delivery_survives_power_cuts_exactly_once() {
    let cuts = cuts();
    let report = run(cuts, &[], false).await;
    assert_eq!(report.cuts, cuts);
    assert!(report.acked >= cuts * ACKS_PER_LIFE, "every receiver life acknowledged deliveries");
    assert!(report.unsynced_bytes > 0, "the cuts threw unsynced writes away (else they proved nothing)");
    eprintln!(
        "power cuts: {} cuts ({} with a torn write), {} deliveries acknowledged, lost: 0; {} unsynced bytes thrown away",
        report.cuts, report.torn, report.acked, report.unsynced_bytes
    );
}

/// The same test against a receiver whose commits are not synced: it must find lost
/// acknowledged deliveries, or the test above proves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_receiver_that_does_not_sync_its_commits_is_caught_losing_acknowledged_deliveries() {
    const UNSYNCED: &[(&str, &str)] = &[("CPWATCH_UNSAFE_SYNCHRONOUS", "NORMAL")];
    let report = run(10, UNSYNCED, true).await;
    let (cut, lost) = report.first_loss.unwrap_or_else(|| {
        panic!(
            "{} power cuts found no lost delivery with synchronous=NORMAL: the test cannot fail",
            report.cuts
        )
    });
    eprintln!(
        "synchronous=NORMAL: cut {cut} lost {} acknowledged deliveries of {} (e.g. {})",
        lost.len(),
        report.acked,
        lost[0]
    );
}
