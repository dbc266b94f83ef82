//! Durability under SIGKILL: concurrent senders post unique deliveries while the real
//! receiver is killed and restarted on the same data directory several times. Every
//! delivery that got a 2xx must be in the database exactly once afterwards, the
//! database must be intact, and every upload's state must be the replay of the
//! deliveries stored for it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::harness::{wait_until, DataDir, Delivery, Jitter};

const SENDERS: usize = 8;
/// CI's count; `CPWATCH_KILLS` sets another (`scripts/soak.sh` kills 100 times).
const KILLS: usize = 4;

fn kills() -> usize {
    std::env::var("CPWATCH_KILLS").ok().and_then(|n| n.parse().ok()).unwrap_or(KILLS)
}
/// Acknowledgements each receiver life must give before it may be killed, so that the
/// kills land while deliveries are flowing rather than during start-up.
const ACKS_PER_LIFE: usize = 25;

/// Sends deliveries one after another, each retried (same id, same body, as CentrePoint
/// retries) until acknowledged; connection errors while the receiver is down are
/// expected. Returns the ids that were acknowledged with a 2xx.
async fn sender(
    index: usize,
    client: reqwest::Client,
    url: Arc<RwLock<String>>,
    stop: Arc<AtomicBool>,
    acks: Arc<AtomicUsize>,
    failures: Arc<AtomicUsize>,
) -> Vec<(String, &'static str)> {
    let mut acked = Vec::new();
    let mut n = 0usize;
    'deliveries: while !stop.load(Ordering::Acquire) {
        // Even deliveries start an upload, odd ones complete the one just started.
        let status = if n.is_multiple_of(2) { "started" } else { "completed" };
        let id = format!("crash-{index}-{n}");
        let delivery = Delivery::upload(&id, "900", &format!("{}{:06}", index + 1, n / 2), status);
        loop {
            if stop.load(Ordering::Acquire) {
                break 'deliveries;
            }
            let target =
                url.read().map(|u| u.clone()).unwrap_or_else(|poisoned| poisoned.into_inner().clone());
            match delivery.try_post(&client, &target).await {
                Ok(reply) if (200..300).contains(&reply.status) => {
                    acked.push((id, status));
                    acks.fetch_add(1, Ordering::AcqRel);
                    break;
                }
                // Refused, reset, refused connection, no answer: the receiver is (being)
                // killed or restarting. Retry the same delivery.
                _ => {
                    failures.fetch_add(1, Ordering::AcqRel);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
        n += 1;
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_delivery_survives_sigkill_exactly_once() {
    let kills = kills();
    let data = Arc::new(DataDir::new());
    let first = data.serve();
    let url = Arc::new(RwLock::new(first.url.clone()));
    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("build the HTTP client");
    let senders: Vec<_> = (0..SENDERS)
        .map(|i| {
            tokio::spawn(sender(i, client.clone(), url.clone(), stop.clone(), acks.clone(), failures.clone()))
        })
        .collect();

    // Killing and restarting blocks (process waits), so it runs off the async workers.
    let controller = {
        let (data, url, acks) = (data.clone(), url.clone(), acks.clone());
        tokio::task::spawn_blocking(move || {
            let mut jitter = Jitter::seeded();
            eprintln!("kill jitter seed: {}", jitter.0);
            let mut server = first;
            for round in 1..=kills {
                let target = acks.load(Ordering::Acquire) + ACKS_PER_LIFE;
                wait_until(&format!("{ACKS_PER_LIFE} acknowledgements before kill {round}"), || {
                    acks.load(Ordering::Acquire) >= target
                });
                std::thread::sleep(jitter.millis(200));
                server.kill();
                eprintln!("kill {round}: SIGKILL after {} acknowledgements", acks.load(Ordering::Acquire));
                // Let the senders meet a dead port for a moment.
                std::thread::sleep(jitter.millis(100));
                server = data.serve();
                *url.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = server.url.clone();
            }
            let target = acks.load(Ordering::Acquire) + ACKS_PER_LIFE;
            wait_until("acknowledgements after the last restart", || acks.load(Ordering::Acquire) >= target);
            server
        })
    };
    let server = controller.await.expect("the kill-and-restart controller");
    stop.store(true, Ordering::Release);
    let mut acked = Vec::new();
    for sender in senders {
        acked.extend(sender.await.expect("a sender"));
    }
    // The last stop is a SIGKILL too: the file is checked as a crash left it.
    server.kill();

    let db = data.db();
    let integrity: String =
        db.query_row("PRAGMA integrity_check", [], |row| row.get(0)).expect("run integrity_check");
    assert_eq!(integrity, "ok", "the database is intact after {kills} SIGKILLs");

    let mut stored: HashMap<String, i64> = HashMap::new();
    let mut stmt =
        db.prepare("SELECT delivery_id, count(*) FROM deliveries GROUP BY delivery_id").expect("prepare");
    let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?))).expect("query deliveries");
    for row in rows {
        let (id, count) = row.expect("read a row");
        stored.insert(id, count);
    }
    assert!(acked.len() >= (kills + 1) * ACKS_PER_LIFE, "every receiver life acknowledged deliveries");
    let failures = failures.load(Ordering::Acquire);
    assert!(failures > 0, "the senders met the receiver down (else the kills proved nothing)");
    for (id, status) in &acked {
        assert_eq!(
            stored.get(id).copied(),
            Some(1),
            "acknowledged delivery {id} ({status}) is stored exactly once after SIGKILLs"
        );
    }
    for (id, status) in acked.iter().filter(|(_, status)| *status == "completed") {
        let upload: Option<String> = db
            .query_row(
                "SELECT u.status FROM uploads u JOIN deliveries d
                     ON d.study_id = u.study_id AND d.upload_id = u.upload_id
                 WHERE d.delivery_id = ?1",
                [id],
                |row| row.get(0),
            )
            .ok();
        assert_eq!(
            upload.as_deref(),
            Some("completed"),
            "a delivery and its upload commit together: the upload of {id} ({status}) shows it"
        );
    }
    let inconsistent: i64 = db
        .query_row(
            "SELECT count(*) FROM uploads u WHERE u.deliveries != (SELECT count(*) FROM deliveries d
                 WHERE d.study_id = u.study_id AND d.upload_id = u.upload_id)",
            [],
            |row| row.get(0),
        )
        .expect("compare uploads with deliveries");
    assert_eq!(inconsistent, 0, "every upload counts exactly the deliveries stored for it");
    let uploads = data.assert_uploads_match_replay();
    assert!(uploads > 0, "the senders created uploads");
    eprintln!(
        "{} deliveries acknowledged across {} receiver lives ({failures} failed attempts); {} ids stored",
        acked.len(),
        kills + 1,
        stored.len()
    );
}
