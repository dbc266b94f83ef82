//! The dashboard end to end in a real headless browser (Debian's Chromium, driven over
//! WebDriver), as a researcher lives it: the first-run guide and its test delivery,
//! deliveries sent with `cpwatch send` appearing live without a reload, the uploads
//! filter kept in the address, a failed upload's detail, the export of exactly the
//! filtered view, a hostile payload that must stay text, and a settings round trip whose
//! passcode never comes back to the page. Screenshots of the main pages are saved under
//! `target/artifacts/dashboard/`.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::browser::{run_in_browser, Browser, Cpwatch, Page, WINDOW};

const STUDY: &str = "189";
const SUBJECT: &str = "44732";
/// A completed upload and a failed one, sent by the researcher with `cpwatch send`.
const COMPLETED: &str = "90001";
const FAILED: &str = "90002";
const FAILED_MESSAGE: &str = "Device clock invalid";
/// The fixtures' uploads: 85045 starts then completes, 85046 fails.
const FIXTURE_TWO_STEPS: &str = "85045";
const FIXTURE_FAILED: &str = "85046";
const FIXTURE_MESSAGE: &str = "A problem occured during upload processing";
/// An error message that would run script if it were ever treated as markup.
const HOSTILE: &str =
    r#"<img src=x onerror="document.title='pwned'"><script>document.title="pwned"</script>"#;
const HOSTILE_UPLOAD: &str = "66666";
const PASSCODE: &str = "browser-test-passcode-3f9a1c";

/// A study card's "Last 7 days" counts (not "Today", which a test running across
/// midnight would split).
const LAST_7_DAYS: &str = ".card-stats .stat-block:nth-child(2)";

/// Whether the page is still the one loaded before the live checks (no reload since).
const NOT_RELOADED: &str = "return window.__cpwatchNoReload === true";

fn fixture(name: &str) -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// `cpwatch send` from async code: it blocks until the command ends.
fn send(cpwatch: &Cpwatch, args: &[&str]) {
    tokio::task::block_in_place(|| cpwatch.send(args));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_researcher_finds_a_failed_upload_sees_why_and_exports_it_in_a_real_browser() {
    run_in_browser("failure", |cpwatch, page| async move { scenario(&cpwatch, &page).await }).await;
}

async fn scenario(cpwatch: &Cpwatch, page: &Page) {
    first_run_guide_shows_the_real_receiver_and_its_test_delivery_lands(cpwatch, page).await;
    deliveries_sent_with_the_cli_appear_live_without_a_reload(cpwatch, page).await;
    the_uploads_filter_lives_in_the_address_and_survives_a_reload(page).await;
    the_export_links_download_exactly_the_filtered_view(page).await;
    a_failed_upload_shows_why_with_its_timeline_and_raw_body(page).await;
    a_hostile_error_message_is_shown_as_text_and_never_runs(cpwatch, page).await;
    the_overview_subjects_and_deliveries_pages_show_the_study(page).await;
    a_webhook_passcode_is_saved_but_never_shown_again(page).await;
    a_new_public_url_shows_its_source_reachability_and_the_portal_steps(page).await;
    let live = page.text("[data-testid=live-indicator]").await.unwrap_or_default();
    let state = page.js("return document.getElementById('live').dataset.state", vec![]).await;
    assert_eq!(state, json!("connected"), "the live indicator says connected at the end ({live:?})");
}

/// First run: with no deliveries the overview is the setup guide, naming the receiver's
/// real port; its test delivery goes through the real receiver and lands on the overview.
async fn first_run_guide_shows_the_real_receiver_and_its_test_delivery_lands(cpwatch: &Cpwatch, page: &Page) {
    page.client.goto(&cpwatch.dashboard_url).await.expect("open the dashboard");
    page.wait_for(
        "[data-testid=first-run]",
        "with no deliveries yet, the overview shows the first-run guide",
    )
    .await;
    let viewport = page.js("return [window.innerWidth, window.innerHeight]", vec![]).await;
    assert_eq!(viewport, json!([WINDOW.0, WINDOW.1]), "the page is seen at the desktop window's size");
    let steps =
        page.js("return document.querySelectorAll('[data-testid=first-run-step]').length", vec![]).await;
    assert_eq!(steps, json!(3), "the first-run guide explains three steps");
    page.wait(
        "the footer names the version and the commit",
        "const foot = document.querySelector('[data-testid=app-version]'); \
         return foot && foot.textContent === arguments[0]",
        vec![json!(format!("cpwatch {}, commit {}", env!("CARGO_PKG_VERSION"), cpwatch::COMMIT))],
    )
    .await;
    let port = cpwatch.receiver_port();
    let tunnels = page.text("[data-testid=tunnel-commands]").await.unwrap_or_default();
    assert!(
        tunnels.contains(&format!("ngrok http {port}"))
            && tunnels.contains(&format!("cloudflared tunnel --url http://127.0.0.1:{port}")),
        "the tunnel commands name the receiver's real port {port}: {tunnels:?}"
    );
    let target = page.text("[data-testid=target-url]").await.unwrap_or_default();
    assert!(target.ends_with("/webhook"), "the portal's target URL ends with the webhook path: {target:?}");
    page.wait(
        "the live indicator says connected",
        "const live = document.getElementById('live'); \
         return live.dataset.state === 'connected' && live.innerText.includes('Live')",
        vec![],
    )
    .await;
    page.screenshot("01-first-run").await;

    page.click("[data-testid=test-delivery-button]").await;
    page.wait(
        "the test delivery lands: the overview replaces the guide with a card for study \"test\"",
        "return document.querySelector('[data-testid=study-card][data-study=\"test\"]') !== null",
        vec![],
    )
    .await;
    let flash = page.text("[data-testid=view-overview] .outcome-ok").await.unwrap_or_default();
    assert!(
        flash.contains("Test delivery accepted by the receiver"),
        "the overview says the receiver accepted the test delivery: {flash:?}"
    );
    assert!(
        flash.contains("It is upload test-") && flash.contains("in study \"test\""),
        "and names the upload it made: {flash:?}"
    );
    assert!(
        page.text("[data-testid=auth-off-warning]").await.is_some(),
        "with no webhook configured the overview warns that authentication is off"
    );
}

/// Deliveries sent with the real CLI show on the overview and in the uploads table
/// while the page stays loaded: the marker set before them survives.
async fn deliveries_sent_with_the_cli_appear_live_without_a_reload(cpwatch: &Cpwatch, page: &Page) {
    page.js("window.__cpwatchNoReload = true", vec![]).await;

    send(cpwatch, &["--study", STUDY, "--subject", SUBJECT, "--upload", COMPLETED, "--status", "completed"]);
    send(
        cpwatch,
        &[
            "--study",
            STUDY,
            "--subject",
            SUBJECT,
            "--upload",
            FAILED,
            "--status",
            "error",
            "--message",
            FAILED_MESSAGE,
        ],
    );
    page.wait(
        "the overview shows study 189's card with its failure, live",
        "const card = document.querySelector('[data-testid=study-card][data-study=\"189\"]'); \
         return !!card && card.querySelector('[data-testid=latest-failures]').textContent.includes(arguments[0])",
        vec![json!(FAILED_MESSAGE)],
    )
    .await;
    let failed_week = page
        .text(&format!("[data-testid=study-card][data-study=\"189\"] {LAST_7_DAYS} .stat-error .stat-n"))
        .await
        .unwrap_or_default();
    assert_eq!(failed_week, "1", "study 189's card counts its failed upload");
    assert_eq!(page.js(NOT_RELOADED, vec![]).await, json!(true), "the overview updated without a reload");

    page.click("[data-testid=nav-uploads]").await;
    page.wait(
        "the uploads table lists the three uploads so far",
        "return document.querySelectorAll('[data-testid=upload-row]').length === 3",
        vec![],
    )
    .await;
    send(cpwatch, &["--study", STUDY, "--count", "20", "--concurrency", "4"]);
    for name in ["upload-started.http", "upload-completed.http", "upload-error.http"] {
        send(cpwatch, &["--fixture", &fixture(name)]);
    }
    page.wait(
        "all 25 uploads appear in the table, live, the fixture's two-step upload completed",
        "const rows = [...document.querySelectorAll('[data-testid=upload-row]')]; \
         return rows.length === 25 && rows.some((r) => r.dataset.upload === arguments[0] && r.dataset.status === 'completed')",
        vec![json!(FIXTURE_TWO_STEPS)],
    )
    .await;
    assert_eq!(
        page.js(NOT_RELOADED, vec![]).await,
        json!(true),
        "deliveries appear in the uploads table without a reload"
    );
    page.screenshot("03-uploads").await;
}

/// Filtering through the form puts the filters in the address; a reload keeps them.
async fn the_uploads_filter_lives_in_the_address_and_survives_a_reload(page: &Page) {
    page.choose("#filter-study", STUDY).await;
    page.wait(
        "choosing a study puts it in the address",
        "return location.hash.includes('study=189')",
        vec![],
    )
    .await;
    page.choose("#filter-status", "error").await;
    let failed_only = "const rows = [...document.querySelectorAll('[data-testid=upload-row]')]; \
         return location.hash.includes('status=error') && rows.length === 2 \
           && rows.every((r) => r.dataset.status === 'error' && r.dataset.study === '189')";
    page.wait("the status filter keeps study 189's two failed uploads", failed_only, vec![]).await;
    let hash = page.hash().await;
    assert!(
        hash.starts_with("#/uploads?") && hash.contains("study=189") && hash.contains("status=error"),
        "the filters live in the address: {hash}"
    );
    let subtitle = page.text("[data-testid=uploads-description]").await.unwrap_or_default();
    assert!(subtitle.starts_with("Failed uploads in Study 189"), "the page says what it lists: {subtitle:?}");
    page.screenshot("04-uploads-filtered").await;

    page.client.refresh().await.expect("reload the page");
    page.wait("after a reload the filtered view is back", failed_only, vec![]).await;
    assert_eq!(page.js(NOT_RELOADED, vec![]).await, json!(false), "the page really reloaded");
    let form = page.js("return [document.getElementById('filter-study').value, document.getElementById('filter-status').value]", vec![]).await;
    assert_eq!(form, json!([STUDY, "error"]), "a reload keeps the filter form as the address says");
    assert_eq!(page.hash().await, hash, "a reload keeps the address");
    page.js("window.__cpwatchNoReload = true", vec![]).await;
}

/// The export links carry the current filters and download exactly the filtered rows,
/// in a file named after the study and the date.
async fn the_export_links_download_exactly_the_filtered_view(page: &Page) {
    let want: BTreeSet<String> = [FAILED, FIXTURE_FAILED].map(String::from).into();
    for format in ["csv", "json"] {
        let link = page
            .js(
                "const a = document.querySelector(`[data-testid=export-${arguments[0]}]`); \
                 return { href: a.href, download: a.hasAttribute('download'), \
                          query: Object.fromEntries(new URL(a.href).searchParams) }",
                vec![json!(format)],
            )
            .await;
        let href = link["href"].as_str().unwrap_or_default().to_string();
        assert_eq!(
            link["query"],
            json!({ "study": STUDY, "status": "error", "format": format }),
            "the {format} export link carries exactly the current filters: {href}"
        );
        assert_eq!(link["download"], json!(true), "the {format} export link downloads a file");

        let answer = page
            .js_async(
                "const [href, done] = arguments; \
                 fetch(href, { cache: 'no-store' }) \
                   .then(async (r) => done({ status: r.status, disposition: r.headers.get('content-disposition'), body: await r.text() })) \
                   .catch((e) => done({ status: 0, body: String(e) }));",
                vec![json!(href)],
            )
            .await;
        assert_eq!(answer["status"], json!(200), "the {format} export answers: {answer}");
        let disposition = answer["disposition"].as_str().unwrap_or_default();
        let name = disposition
            .split("filename=\"")
            .nth(1)
            .and_then(|rest| rest.strip_suffix('"'))
            .unwrap_or_else(|| panic!("the {format} export names its file: {disposition:?}"));
        let date = name
            .strip_prefix("cpwatch-study-189-")
            .and_then(|rest| rest.strip_suffix(&format!(".{format}")))
            .unwrap_or_else(|| panic!("the {format} export is named after the study: {name}"));
        assert!(
            chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok(),
            "the {format} export is named after the date: {name}"
        );
        let body = answer["body"].as_str().unwrap_or_default();
        let got: BTreeSet<String> = if format == "csv" {
            let mut lines = body.lines();
            assert!(
                lines.next().is_some_and(|h| h.starts_with("study_id,")),
                "the CSV starts with its header"
            );
            lines
                .map(|line| {
                    let cells: Vec<&str> = line.split(',').collect();
                    assert_eq!(
                        (cells[0], cells[3]),
                        (STUDY, "error"),
                        "a CSV row of the filtered view: {line}"
                    );
                    cells[2].to_string()
                })
                .collect()
        } else {
            let rows: Value = serde_json::from_str(body).expect("the JSON export parses");
            rows.as_array()
                .expect("the JSON export is an array of uploads")
                .iter()
                .map(|row| {
                    assert_eq!((&row["study_id"], &row["status"]), (&json!(STUDY), &json!("error")), "{row}");
                    row["upload_id"].as_str().unwrap_or_default().to_string()
                })
                .collect()
        };
        assert_eq!(got, want, "the {format} export holds exactly the filtered rows");
        if format == "csv" {
            assert!(
                body.contains(FAILED_MESSAGE) && body.contains(FIXTURE_MESSAGE),
                "the CSV carries the error messages"
            );
        }
    }
}

/// The failed upload's detail says why it failed and shows its deliveries whole.
async fn a_failed_upload_shows_why_with_its_timeline_and_raw_body(page: &Page) {
    page.click(&format!("[data-testid=upload-row][data-upload=\"{FAILED}\"] [data-testid=upload-link]"))
        .await;
    page.wait_for(
        "[data-testid=view-upload-detail] [data-testid=upload-error]",
        "the failed upload's detail opens",
    )
    .await;
    let why = page.text("[data-testid=upload-error] .failure-message").await;
    assert_eq!(why.as_deref(), Some(FAILED_MESSAGE), "the detail says why the upload failed");
    let status = page
        .js("return document.querySelector('[data-testid=upload-status] .pill')?.dataset.status", vec![])
        .await;
    assert_eq!(status, json!("error"), "the detail shows the upload as failed");
    let timeline = page.js("return [...document.querySelectorAll('[data-testid=timeline-delivery]')].map((d) => d.dataset.status)", vec![]).await;
    assert_eq!(timeline, json!(["error"]), "the timeline holds the one delivery of this upload");
    page.click("[data-testid=timeline-delivery] details > summary").await;
    page.wait_for(
        "[data-testid=timeline-delivery] details[open] [data-testid=delivery-body]",
        "the raw delivery opens",
    )
    .await;
    let body =
        page.text("[data-testid=timeline-delivery] [data-testid=delivery-body]").await.unwrap_or_default();
    assert!(
        body.contains(&format!("\"message\": \"{FAILED_MESSAGE}\""))
            && body.contains(&format!("\"uploadId\": \"{FAILED}\"")),
        "the raw body is shown pretty printed: {body}"
    );
    let headers =
        page.text("[data-testid=timeline-delivery] [data-testid=delivery-headers]").await.unwrap_or_default();
    assert!(
        headers.to_ascii_lowercase().contains("x-actigraph-event"),
        "the raw headers are shown: {headers}"
    );
    let auth =
        page.text("[data-testid=timeline-delivery] [data-testid=delivery-auth]").await.unwrap_or_default();
    assert!(auth.contains("open"), "the delivery's authentication outcome is shown: {auth:?}");
    page.js("window.scrollTo(0, 0)", vec![]).await;
    page.screenshot("05-upload-detail").await;

    // An upload that started, then completed: two deliveries, and its epoch range.
    page.js("location.hash = arguments[0]", vec![json!(format!("#/uploads/{STUDY}/{FIXTURE_TWO_STEPS}"))])
        .await;
    let timeline = page
        .wait(
            "the two-step upload's timeline shows both deliveries",
            "const items = [...document.querySelectorAll('[data-testid=timeline-delivery]')].map((d) => d.dataset.status); \
             return items.length === 2 ? items : null",
            vec![],
        )
        .await;
    let mut statuses: Vec<_> = timeline.as_array().cloned().unwrap_or_default();
    statuses.sort_by_key(|s| s.to_string());
    assert_eq!(statuses, vec![json!("completed"), json!("started")], "the timeline holds both deliveries");
    let epochs = page.text("[data-testid=upload-epochs]").await.unwrap_or_default();
    assert!(epochs.contains("2016"), "the epoch range is shown: {epochs:?}");
    assert_eq!(page.js(NOT_RELOADED, vec![]).await, json!(true), "opening details does not reload the page");
}

/// An error message made of markup shows as characters on the uploads page and the
/// detail page; nothing in it becomes an element or runs.
async fn a_hostile_error_message_is_shown_as_text_and_never_runs(cpwatch: &Cpwatch, page: &Page) {
    page.click("[data-testid=back-to-uploads]").await;
    page.wait(
        "back on the filtered uploads",
        "return location.hash.startsWith('#/uploads?') && document.querySelectorAll('[data-testid=upload-row]').length === 2",
        vec![],
    )
    .await;
    // Records every img or script element ever added to the page from now on.
    page.js(
        "window.__injected = []; \
         new MutationObserver((changes) => { \
           for (const change of changes) for (const node of change.addedNodes) { \
             if (node.nodeType !== 1) continue; \
             for (const el of [node, ...node.querySelectorAll('img, script')]) { \
               if (el.tagName === 'SCRIPT' || (el.tagName === 'IMG' && el.getAttribute('src') === 'x')) \
                 window.__injected.push(el.outerHTML.slice(0, 200)); \
             } \
           } \
         }).observe(document.documentElement, { childList: true, subtree: true });",
        vec![],
    )
    .await;
    let uploads_title = page.js("return document.title", vec![]).await;
    send(
        cpwatch,
        &[
            "--study",
            STUDY,
            "--subject",
            SUBJECT,
            "--upload",
            HOSTILE_UPLOAD,
            "--status",
            "error",
            "--message",
            HOSTILE,
        ],
    );
    let row = format!("[data-testid=upload-row][data-upload=\"{HOSTILE_UPLOAD}\"]");
    page.wait_for(&row, "the hostile upload appears live in the filtered view").await;
    let shown = page.text(&format!("{row} .message")).await;
    assert_eq!(shown.as_deref(), Some(HOSTILE), "the uploads page shows the hostile message as characters");
    assert_no_injection(page, &uploads_title, "the uploads page").await;

    page.click(&format!("{row} [data-testid=upload-link]")).await;
    page.wait_for(
        "[data-testid=view-upload-detail] [data-testid=upload-error]",
        "the hostile upload's detail opens",
    )
    .await;
    let why = page.text("[data-testid=upload-error] .failure-message").await;
    assert_eq!(why.as_deref(), Some(HOSTILE), "the detail page shows the hostile message as characters");
    page.click("[data-testid=timeline-delivery] details > summary").await;
    let body =
        page.text("[data-testid=timeline-delivery] [data-testid=delivery-body]").await.unwrap_or_default();
    assert!(body.contains("<script>document.title="), "the raw body shows the markup as characters: {body}");
    let detail_title = json!(format!("Upload {HOSTILE_UPLOAD} · cpwatch"));
    assert_no_injection(page, &detail_title, "the detail page").await;
    page.js("window.scrollTo(0, 0)", vec![]).await;
    page.screenshot("05b-upload-detail-hostile-message").await;
}

async fn assert_no_injection(page: &Page, title: &Value, where_: &str) {
    // Give an injected handler every chance to run before looking.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let found = page
        .js(
            "return { title: document.title, \
                      imgs: document.querySelectorAll('img[src=\"x\"]').length, \
                      scripts: document.querySelectorAll('#view script, body script').length, \
                      injected: window.__injected }",
            vec![],
        )
        .await;
    assert_eq!(&found["title"], title, "a hostile payload does not change document.title on {where_}");
    assert_eq!(found["imgs"], json!(0), "no injected img element exists on {where_}");
    assert_eq!(found["scripts"], json!(0), "no injected script element exists on {where_}");
    assert_eq!(found["injected"], json!([]), "no img or script element was ever added on {where_}");
}

/// The overview, subjects and deliveries pages with the whole study in them.
async fn the_overview_subjects_and_deliveries_pages_show_the_study(page: &Page) {
    page.click("[data-testid=nav-overview]").await;
    page.wait(
        "the overview counts study 189's three failed uploads",
        "return document.querySelector(arguments[0])?.textContent === '3'",
        vec![json!(format!(
            "[data-testid=study-card][data-study=\"189\"] {LAST_7_DAYS} .stat-error .stat-n"
        ))],
    )
    .await;
    page.screenshot("02-overview").await;

    page.click("[data-testid=nav-subjects]").await;
    page.choose("#subjects-study", STUDY).await;
    page.wait(
        "the subjects of study 189 are listed",
        "const subjects = [...document.querySelectorAll('[data-testid=subject-row]')].map((r) => r.dataset.subject); \
         return subjects.includes('44732') && subjects.includes('44733')",
        vec![],
    )
    .await;
    page.screenshot("06-subjects").await;

    page.click("[data-testid=nav-deliveries]").await;
    page.wait(
        "every delivery is listed: the test one, 25 sent and the hostile one",
        "return document.querySelectorAll('[data-testid=delivery-row]').length === 27",
        vec![],
    )
    .await;
    let tabs = page
        .js("const t = document.querySelector('.tabs'); return [t.scrollHeight, t.clientHeight]", vec![])
        .await;
    assert!(
        tabs[0].as_i64() <= tabs[1].as_i64(),
        "the deliveries tabs fit their row, without a scrollbar: {tabs}"
    );
    page.click("[data-testid=delivery-row] [data-testid=delivery-raw-toggle]").await;
    page.wait_for(
        "[data-testid=delivery-raw] [data-testid=delivery-body]",
        "a delivery's raw content opens on demand",
    )
    .await;
    page.js("window.scrollTo(0, 0)", vec![]).await;
    page.screenshot("07-deliveries").await;
    assert_eq!(page.js(NOT_RELOADED, vec![]).await, json!(true), "moving between pages never reloads");
}

/// The receiver card: a public URL typed in Settings is shown with its source and its
/// reachability, and since no validation arrived there, a banner gives the portal steps
/// with the URL to copy. The URL points nowhere (`.invalid`): the card says why.
async fn a_new_public_url_shows_its_source_reachability_and_the_portal_steps(page: &Page) {
    let url = "https://cpwatch-test.invalid/webhook";
    page.js("window.__cpwatchNoReload = true", vec![]).await;
    page.click("[data-testid=nav-settings]").await;
    page.wait_for("[data-testid=pref-public-url]", "the Settings page shows the public URL field").await;
    // Clear of the sticky navigation bar, as a person would scroll to it.
    page.js(
        "const i = document.querySelector('[data-testid=pref-public-url]'); \
         i.scrollIntoView({ block: 'center' }); i.value = ''",
        vec![],
    )
    .await;
    page.type_into("[data-testid=pref-public-url]", url).await;
    page.js(
        "document.querySelector('[data-testid=public-url-save]').scrollIntoView({ block: 'center' })",
        vec![],
    )
    .await;
    page.click("[data-testid=public-url-save]").await;
    page.click("[data-testid=nav-overview]").await;
    // The monitor's change reaches the page by the live stream, without a reload.
    let banner = page
        .wait(
            "the overview's banner gives the new URL and the portal steps",
            "const b = document.querySelector('[data-testid=url-change-banner]'); return b && b.textContent",
            vec![],
        )
        .await;
    let banner = banner.as_str().unwrap_or_default().to_string();
    assert!(banner.contains(url) && banner.contains("press Validate"), "{banner:?}");
    assert_eq!(page.text("[data-testid=new-webhook-url]").await.as_deref(), Some(url), "the URL to copy");
    assert_eq!(
        page.js("return !!document.querySelector('[data-testid=url-change-banner] button')", vec![]).await,
        json!(true),
        "with a Copy button"
    );
    assert_eq!(page.text("[data-testid=public-url]").await.as_deref(), Some(url));
    let source = page.text("[data-testid=public-url-source]").await.unwrap_or_default();
    assert!(source.contains("from the configuration"), "the source is shown: {source:?}");
    let validation = page.text("[data-testid=validation-state]").await.unwrap_or_default();
    assert!(validation.contains("not yet validated at this URL"), "{validation:?}");
    // Probes of a name that does not resolve fail: the card says so, with the reason.
    let reach = page
        .wait(
            "the card says the URL cannot be reached",
            "const r = document.querySelector('[data-testid=reachability]'); \
             return r && r.textContent.startsWith('Reachableno') && r.textContent",
            vec![],
        )
        .await;
    assert!(reach.as_str().is_some_and(|r| r.contains("cpwatch-test.invalid")), "with the reason: {reach}");
    page.wait_for("[data-testid=unreachable-warning]", "and a banner says CentrePoint cannot reach cpwatch")
        .await;
    page.screenshot("08-unreachable").await;
    assert_eq!(page.js(NOT_RELOADED, vec![]).await, json!(true), "all of it without a reload");
}

/// Settings: a webhook with a passcode is saved and shows "Secret set", but the passcode
/// itself never appears in the page afterwards, not even after a reload.
async fn a_webhook_passcode_is_saved_but_never_shown_again(page: &Page) {
    // The way in a researcher is offered: the overview's warning that authentication is off.
    page.click("[data-testid=nav-overview]").await;
    page.click("[data-testid=auth-off-warning] a").await;
    page.wait_for("[data-testid=webhooks-empty]", "settings say no webhook is configured yet").await;
    let heading = page
        .wait(
            "the settings scroll to the webhooks section",
            "const top = document.getElementById('webhooks-title').getBoundingClientRect().top; \
             const bar = document.querySelector('.topbar').getBoundingClientRect().bottom; \
             return window.scrollY > 0 ? { top, bar } : null",
            vec![],
        )
        .await;
    assert!(
        heading["top"].as_f64() >= heading["bar"].as_f64(),
        "a link to a settings section shows its heading below the sticky top bar, not under it: {heading}"
    );
    page.type_into("#webhook-id", "15").await;
    page.type_into("#webhook-label", "Sleep study").await;
    let mode = page.js("return document.getElementById('webhook-mode').value", vec![]).await;
    assert_eq!(mode, json!("passcode"), "a new webhook defaults to a signing passcode");
    page.type_into("#webhook-secret", PASSCODE).await;
    page.click("[data-testid=webhook-save]").await;
    let row = "[data-testid=webhook-row][data-webhook=\"15\"]";
    page.wait(
        "the webhook is saved with its secret set",
        "const row = document.querySelector(arguments[0]); \
         return !!row && row.textContent.includes('Secret set') && row.textContent.includes('Sleep study')",
        vec![json!(row)],
    )
    .await;
    let result = page.text("[data-testid=webhook-result]").await.unwrap_or_default();
    assert!(result.contains("secret set"), "the form says the webhook was saved: {result:?}");
    assert_passcode_absent(page, "after saving").await;

    page.client.refresh().await.expect("reload the settings");
    page.wait_for(row, "the webhook is still there after a reload").await;
    page.click(&format!("{row} [data-testid=webhook-edit]")).await;
    let secret = page
        .js(
            "const s = document.getElementById('webhook-secret'); return { value: s.value, placeholder: s.placeholder }",
            vec![],
        )
        .await;
    assert_eq!(secret["value"], json!(""), "editing a webhook never fills in its secret");
    assert_eq!(
        secret["placeholder"],
        json!("Leave empty to keep the current one"),
        "editing says a secret is set without showing it"
    );
    assert_passcode_absent(page, "after a reload, while editing").await;
    page.js("document.getElementById('settings-webhooks').scrollIntoView({ block: 'start' })", vec![]).await;
    page.screenshot("08-settings").await;
}

async fn assert_passcode_absent(page: &Page, when: &str) {
    let found = page
        .js(
            "const p = arguments[0]; \
             return { html: document.documentElement.outerHTML.includes(p), \
                      text: document.body.innerText.includes(p), \
                      fields: [...document.querySelectorAll('input, textarea')].some((i) => i.value.includes(p)) }",
            vec![json!(PASSCODE)],
        )
        .await;
    assert_eq!(
        found,
        json!({ "html": false, "text": false, "fields": false }),
        "a webhook's passcode never appears in the page's DOM {when}"
    );
}

/// Start at login as the desktop app offers it: a file that exists while the setting is
/// on. The desktop app's own end-to-end test checks its real XDG autostart entry; here
/// the Settings page's control is driven in a real browser against an in-process
/// receiver that has a desktop attached.
struct StartAtLoginFile(std::path::PathBuf);

impl cpwatch::dashboard::DesktopSettings for StartAtLoginFile {
    fn start_at_login(&self) -> Option<bool> {
        Some(self.0.exists())
    }

    fn set_start_at_login(&self, on: bool) -> Result<(), cpwatch::dashboard::DesktopSettingError> {
        let done =
            if on { std::fs::write(&self.0, "[Desktop Entry]\n") } else { std::fs::remove_file(&self.0) };
        done.map_err(|source| cpwatch::dashboard::DesktopSettingError::Write { path: self.0.clone(), source })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inside_the_desktop_app_the_settings_page_turns_start_at_login_on_and_off() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let config = cpwatch::config::Config {
        listen: "127.0.0.1:0".parse().expect("an address"),
        dashboard_listen: "127.0.0.1:0".parse().expect("an address"),
        data_dir: Some(dir.path().join("data")),
        ..Default::default()
    };
    let receiver = cpwatch::server::Receiver::start(config).await.expect("the receiver starts");
    let entry = dir.path().join("cpwatch.desktop");
    receiver.desktop_link().attach(Arc::new(StartAtLoginFile(entry.clone())));
    let dashboard = receiver.dashboard_url();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(receiver.run(async {
        let _ = stopped.await;
    }));
    let browser = Browser::start().await;
    let page = Page { client: browser.client.clone() };
    let checked = "return document.querySelector('[data-testid=start-at-login]').checked";
    let outcome = tokio::spawn({
        let (page, entry) = (page.clone(), entry.clone());
        async move {
            page.client.goto(&format!("{dashboard}#/settings?section=desktop")).await.expect("open Settings");
            page.wait_for("[data-testid=desktop-settings]", "inside the desktop app, Settings has its panel")
                .await;
            assert_eq!(page.js(checked, vec![]).await, json!(false), "off at first");
            page.click("[data-testid=start-at-login]").await;
            page.wait(
                "the change is confirmed",
                "return document.querySelector('[data-testid=start-at-login-result]').textContent",
                vec![],
            )
            .await;
            assert!(entry.exists(), "ticking the box turns start at login on");
            let said = page.text("[data-testid=start-at-login-result]").await.unwrap_or_default();
            assert_eq!(said, "cpwatch will start when you log in.");
            page.client.refresh().await.expect("reload");
            page.wait("after a reload the box is still ticked", checked, vec![]).await;
            page.click("[data-testid=start-at-login]").await;
            page.wait(
                "unticking is confirmed",
                "return document.querySelector('[data-testid=start-at-login-result]').textContent \
                 === 'cpwatch will not start at login.'",
                vec![],
            )
            .await;
            assert!(!entry.exists(), "unticking it turns start at login off");
            // The tray turns it on while the page is open: the box follows once the
            // window has the focus again.
            cpwatch::dashboard::DesktopSettings::set_start_at_login(&StartAtLoginFile(entry.clone()), true)
                .expect("turned on elsewhere");
            page.js("window.dispatchEvent(new FocusEvent('focus'))", vec![]).await;
            page.wait("the box shows the change made elsewhere", checked, vec![]).await;
            page.screenshot("settings-desktop").await;
        }
    })
    .await;
    browser.close().await;
    let _ = stop.send(());
    served.await.expect("the receiver task").expect("the receiver stops cleanly");
    if let Err(failure) = outcome {
        std::panic::resume_unwind(failure.into_panic());
    }
}
