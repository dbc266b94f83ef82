//! Retry storms: CentrePoint retries a delivery it got no answer for (a couple of times
//! at once, again a day later, and by hand from the portal), tunnels reorder requests,
//! and ActiGraph's own examples reuse one delivery id across statuses. Here every
//! delivery of many uploads is sent many times, concurrently and out of order, mixed
//! with retries of the deliveries before it, against the real receiver. Each distinct
//! delivery must be stored once with its retries counted, and every upload must end in
//! the state its rules give, which is also the replay of its stored deliveries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cpwatch::receive::signature::Scheme;
use tokio::sync::Semaphore;

use crate::harness::{Auth, DataDir, Delivery};

/// Copies of each new delivery sent at once.
const COPIES: usize = 8;
/// At most this many retries of each earlier delivery are mixed into every stage.
const RESENDS: u64 = 3;
/// Uploads per scenario.
const UPLOADS_PER_SCENARIO: usize = 5;
/// Requests in flight at once, across all uploads.
const IN_FLIGHT: usize = 96;
const STUDY: &str = "901";

/// One distinct delivery of an upload's script: its status, and a tag that makes a
/// second delivery of the same status a different delivery (new id, new body).
#[derive(Debug, Clone, Copy)]
struct Step(&'static str, u8);

const S: Step = Step("started", 0);
const S2: Step = Step("started", 1);
const C: Step = Step("completed", 0);
const E: Step = Step("error", 0);

struct Scenario {
    rule: &'static str,
    /// Stages in order; the deliveries of one stage are sent together, in any order.
    /// A stage starts once every delivery before it was acknowledged at least once.
    stages: &'static [&'static [Step]],
    /// The upload's final status; `None` where the order within a stage decides it
    /// (then only the replay check applies).
    expected: Option<&'static str>,
    /// Every delivery of the upload under one delivery id, as ActiGraph's examples do.
    one_id: bool,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        rule: "started then completed is completed",
        stages: &[&[S], &[C]],
        expected: Some("completed"),
        one_id: false,
    },
    Scenario {
        rule: "a late started after completed does not re-open the upload",
        stages: &[&[C], &[S]],
        expected: Some("completed"),
        one_id: false,
    },
    Scenario {
        rule: "a second started (new id) after completed does not re-open the upload",
        stages: &[&[S], &[C], &[S2]],
        expected: Some("completed"),
        one_id: false,
    },
    Scenario {
        rule: "re-processing after an error completes the upload",
        stages: &[&[S], &[E], &[C]],
        expected: Some("completed"),
        one_id: false,
    },
    Scenario {
        rule: "re-processing with a new started after an error completes the upload",
        stages: &[&[S], &[E], &[S2], &[C]],
        expected: Some("completed"),
        one_id: false,
    },
    Scenario {
        rule: "a later error replaces a completion",
        stages: &[&[S], &[C], &[E]],
        expected: Some("error"),
        one_id: false,
    },
    Scenario {
        rule: "a late started after an error does not re-open the upload",
        stages: &[&[E], &[S]],
        expected: Some("error"),
        one_id: false,
    },
    Scenario {
        rule: "started and completed racing each other end completed",
        stages: &[&[S, C]],
        expected: Some("completed"),
        one_id: false,
    },
    Scenario {
        rule: "started and error racing each other end in error",
        stages: &[&[S, E]],
        expected: Some("error"),
        one_id: false,
    },
    Scenario {
        rule: "error and completion racing each other end as their arrival order says",
        stages: &[&[S], &[E, C]],
        expected: None,
        one_id: false,
    },
    Scenario {
        rule: "repeated starts stay started",
        stages: &[&[S], &[S2]],
        expected: Some("started"),
        one_id: false,
    },
    Scenario {
        rule: "one delivery id reused for started and completed keeps both deliveries",
        stages: &[&[S], &[C]],
        expected: Some("completed"),
        one_id: true,
    },
];

/// A small xorshift generator: orders vary from run to run without a dependency.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Rng((nanos ^ u64::from(std::process::id()).rotate_left(32)) | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i as u64 + 1) as usize);
        }
    }
}

/// The body CentrePoint would send for `step` of upload `upload`.
fn body(upload: &str, step: Step) -> String {
    let Step(status, tag) = step;
    let extra = match status {
        "completed" => {
            r#","firstEpochUTC":"2026-05-01T00:00:00.0000000","lastEpochUTC":"2026-05-07T23:59:00.0000000","firstEpochSubjectTZ":"2026-04-30T20:00:00.0000000","lastEpochSubjectTZ":"2026-05-07T19:59:00.0000000""#.to_string()
        }
        "error" => format!(r#","message":"Device clock invalid ({upload})""#),
        _ => String::new(),
    };
    // The tag goes into the body too, so a second `started` is a different delivery even
    // under a reused id.
    format!(
        r#"{{"status":"{status}","uploadId":"{upload}","subjectId":"4{tag}","studyId":"{STUDY}"{extra}}}"#
    )
}

/// Every distinct delivery: how often it was sent and how often the answer said `stored`.
#[derive(Default)]
struct Tally {
    sends: HashMap<(String, String), u64>,
    stored_answers: HashMap<(String, String), u64>,
    other_answers: Vec<String>,
}

/// Sends each delivery in `batch` (already shuffled) concurrently and waits for all.
async fn send_all(
    client: &reqwest::Client,
    url: &str,
    slots: &Arc<Semaphore>,
    tally: &Arc<Mutex<Tally>>,
    batch: Vec<Delivery>,
) {
    let tasks: Vec<_> = batch
        .into_iter()
        .map(|delivery| {
            let (client, url, slots, tally) = (client.clone(), url.to_string(), slots.clone(), tally.clone());
            tokio::spawn(async move {
                let _slot = slots.acquire_owned().await.expect("the semaphore is never closed");
                let reply = delivery.post(&client, &url).await;
                let key = (delivery.id(), String::from_utf8_lossy(&delivery.body).into_owned());
                let mut tally = tally.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                *tally.sends.entry(key.clone()).or_default() += 1;
                match (reply.status, reply.body.trim()) {
                    (200, "stored") => *tally.stored_answers.entry(key).or_default() += 1,
                    (200, "duplicate") => {}
                    (status, text) => tally.other_answers.push(format!("{}: {status} {text}", key.0)),
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a sender task");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_storm_stores_each_delivery_once_and_leaves_every_upload_in_its_rule_state() {
    let data = DataDir::new();
    let auth = Auth::Passcode { passcode: "retry storm passcode".into(), scheme: Scheme::Base64Sha256 };
    data.configure("default", &auth);
    let server = data.serve();
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .expect("build the HTTP client");
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let seed = Rng::seeded().0;
    eprintln!("retry storm seed: {seed}");

    // Each upload's script: its distinct deliveries, stage by stage.
    let mut uploads = Vec::new();
    for (s, scenario) in SCENARIOS.iter().enumerate() {
        for n in 0..UPLOADS_PER_SCENARIO {
            let upload = format!("{}{:02}{n}", 7, s);
            let stages: Vec<Vec<Delivery>> = scenario
                .stages
                .iter()
                .map(|stage| {
                    stage
                        .iter()
                        .map(|step| {
                            let id = if scenario.one_id {
                                format!("storm-{upload}")
                            } else {
                                format!("storm-{upload}-{}-{}", step.0, step.1)
                            };
                            Delivery::new("upload", &id, body(&upload, *step)).signed(&auth)
                        })
                        .collect()
                })
                .collect();
            uploads.push((scenario, upload, stages));
        }
    }

    // All uploads advance at once, each through its stages: the new deliveries of a stage
    // COPIES times each, mixed with up to RESENDS retries of every earlier delivery,
    // shuffled and sent concurrently.
    let scripts: Vec<_> = uploads
        .iter()
        .enumerate()
        .map(|(i, (_, _, stages))| {
            let (client, url, slots, tally) =
                (client.clone(), server.url.clone(), slots.clone(), tally.clone());
            let stages = stages.clone();
            let mut rng = Rng(seed.rotate_left(i as u32) | 1);
            tokio::spawn(async move {
                let mut earlier: Vec<Delivery> = Vec::new();
                for stage in stages {
                    let mut batch = Vec::new();
                    for delivery in &stage {
                        batch.extend(std::iter::repeat_n(delivery.clone(), COPIES));
                    }
                    for delivery in &earlier {
                        batch.extend(std::iter::repeat_n(delivery.clone(), rng.below(RESENDS + 1) as usize));
                    }
                    rng.shuffle(&mut batch);
                    send_all(&client, &url, &slots, &tally, batch).await;
                    earlier.extend(stage);
                }
            })
        })
        .collect();
    for script in scripts {
        script.await.expect("an upload's script");
    }

    let uploads_table = "SELECT * FROM uploads ORDER BY study_id, upload_id";
    let before_late_storm = data.table(uploads_table);
    // Days later, by hand from the portal: every delivery of every upload twice more, all at once.
    let mut late: Vec<Delivery> = uploads
        .iter()
        .flat_map(|(_, _, stages)| stages.concat())
        .flat_map(|delivery| [delivery.clone(), delivery])
        .collect();
    Rng(seed).shuffle(&mut late);
    send_all(&client, &server.url, &slots, &tally, late).await;
    assert_eq!(
        data.table(uploads_table),
        before_late_storm,
        "a storm of retries of already stored deliveries changes no upload"
    );

    let tally = Arc::try_unwrap(tally).ok().expect("every sender is done").into_inner().expect("tally");
    assert!(tally.other_answers.is_empty(), "every send is acknowledged 200: {:?}", tally.other_answers);
    let distinct = tally.sends.len();
    let sends: u64 = tally.sends.values().sum();
    for ((id, body), sent) in &tally.sends {
        assert_eq!(
            tally.stored_answers.get(&(id.clone(), body.clone())).copied(),
            Some(1),
            "delivery {id} ({body}), sent {sent} times: exactly one answer says `stored`, the others `duplicate`"
        );
        let rows: Vec<_> =
            data.deliveries(id).into_iter().filter(|row| row.body == body.as_bytes()).collect();
        assert_eq!(rows.len(), 1, "delivery {id} ({body}), sent {sent} times, is stored once");
        assert_eq!(
            rows[0].duplicates,
            *sent as i64 - 1,
            "delivery {id} ({body}): every retry after the first is counted as a duplicate"
        );
    }
    assert_eq!(
        data.count("SELECT count(*) FROM deliveries"),
        distinct as i64,
        "nothing but the distinct deliveries is stored"
    );
    assert_eq!(
        data.count("SELECT sum(duplicates) FROM deliveries"),
        (sends - distinct as u64) as i64,
        "every retry is counted once"
    );

    for (scenario, upload, stages) in &uploads {
        let row = data
            .upload(STUDY, upload)
            .unwrap_or_else(|| panic!("{}: upload {upload} is known", scenario.rule));
        let steps: Vec<Step> = scenario.stages.iter().flat_map(|stage| stage.iter().copied()).collect();
        if let Some(expected) = scenario.expected {
            assert_eq!(row.status, expected, "{}: upload {upload}", scenario.rule);
        } else {
            assert!(
                ["error", "completed"].contains(&row.status.as_str()),
                "{}: upload {upload} ends in one of the racing statuses, got {}",
                scenario.rule,
                row.status
            );
        }
        let distinct_deliveries = stages.iter().map(Vec::len).sum::<usize>();
        assert_eq!(
            row.deliveries, distinct_deliveries as i64,
            "{}: upload {upload} counts its {distinct_deliveries} distinct deliveries, not their retries",
            scenario.rule
        );
        let has = |status: &str| steps.iter().any(|step| step.0 == status);
        assert_eq!(
            (row.started_at.is_some(), row.completed_at.is_some(), row.failed_at.is_some()),
            (has("started"), has("completed"), has("error")),
            "{}: upload {upload} keeps the time of every status it received",
            scenario.rule
        );
        if scenario.one_id {
            assert_eq!(
                data.deliveries(&format!("storm-{upload}")).len(),
                distinct_deliveries,
                "{}: the same id with another body is another delivery",
                scenario.rule
            );
        }
    }
    let checked = data.assert_uploads_match_replay();
    assert_eq!(checked, uploads.len(), "every upload of the storm was checked against its replay");
    eprintln!("{sends} sends of {distinct} distinct deliveries for {checked} uploads");
    server.stop();
}
