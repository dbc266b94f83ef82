//! The compliance view end to end in a real headless browser, as a study coordinator
//! uses it: the protocol and the roster set in Settings (a bad value and a bad file
//! refused with the reason shown), daily statistics and uploads sent with `cpwatch send`,
//! then the page: silent subjects first, each day's cell coloured and worded against the
//! threshold, the filters and the day range in the address, a hostile subject label shown
//! as text, the CSV export of exactly what is shown, a new delivery changing a cell
//! without a reload, and the subject's own day-by-day wear table. Screenshots go under
//! `target/artifacts/dashboard/`.

use chrono::{Duration, NaiveDate};
use fantoccini::Locator;
use serde_json::{json, Value};

use crate::browser::{run_in_browser, Cpwatch, Page};

const STUDY: &str = "189";
/// On the roster, uploads today; yesterday valid at exactly 600 min, the day before 599.
const ANNA: &str = "1001";
/// On the roster with a label made of markup; yesterday's statistics but never an
/// upload, so silent since monitoring began.
const HOSTILE: &str = "1002";
const HOSTILE_LABEL: &str = r#"<img src=x onerror="document.title='pwned'">"#;
/// On the roster from five days ago and never synced.
const NEVER: &str = "1003";
/// Not on the roster; uploads today, yesterday 900 min.
const UNLISTED: &str = "2001";
/// Monitoring began this many days ago.
const MONITORING_DAYS: i64 = 20;

/// Whether the page is still the one loaded before the live check (no reload since).
const NOT_RELOADED: &str = "return window.__cpwatchNoReload === true";

fn today() -> NaiveDate {
    chrono::Local::now().date_naive()
}

fn ago(days: i64) -> String {
    (today() - Duration::days(days)).format("%Y-%m-%d").to_string()
}

fn send(cpwatch: &Cpwatch, args: &[&str]) {
    tokio::task::block_in_place(|| cpwatch.send(args));
}

/// The daily-statistics fixture's body, for another subject, day and wear time.
fn daily_statistics(subject: &str, day: &str, wear: u32) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/daily-statistics-complete.http");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let start = text.find("\n{").unwrap_or_else(|| panic!("{} has a JSON body", path.display()));
    let mut body: Value = serde_json::from_str(text[start..].trim()).expect("the fixture's body is JSON");
    body["studyId"] = json!(STUDY.parse::<u64>().expect("a numeric study id"));
    body["subjectId"] = json!(subject.parse::<u64>().expect("a numeric subject id"));
    body["date"] = json!(format!("{day}T00:00:00"));
    body["epochAggregation"]["wearMinutes"] = json!(wear);
    body["epochAggregation"]["nonWearMinutes"] = json!(1440 - wear);
    body.to_string()
}

/// Sends a subject-day's statistics with `cpwatch send --body`, as CentrePoint would.
fn send_day(cpwatch: &Cpwatch, dir: &std::path::Path, subject: &str, day: &str, wear: u32) {
    let file = dir.join(format!("daily-{subject}-{day}.json"));
    std::fs::write(&file, daily_statistics(subject, day, wear)).expect("write a delivery body");
    send(cpwatch, &["--event", "daily-statistics-complete", "--body", &file.to_string_lossy()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_sees_who_is_silent_and_whose_days_count_in_a_real_browser() {
    run_in_browser("compliance-failure", |cpwatch, page| async move { scenario(&cpwatch, &page).await })
        .await;
}

async fn scenario(cpwatch: &Cpwatch, page: &Page) {
    let files = tempfile::tempdir().expect("a temp dir for the test's files");
    // Uploads today for two subjects, and the days' statistics.
    send(cpwatch, &["--study", STUDY, "--subject", ANNA, "--upload", "5001", "--status", "completed"]);
    send(cpwatch, &["--study", STUDY, "--subject", UNLISTED, "--upload", "5002", "--status", "completed"]);
    send_day(cpwatch, files.path(), ANNA, &ago(1), 600);
    send_day(cpwatch, files.path(), ANNA, &ago(2), 599);
    send_day(cpwatch, files.path(), HOSTILE, &ago(1), 700);
    send_day(cpwatch, files.path(), UNLISTED, &ago(1), 900);

    the_protocol_is_set_in_settings_and_a_bad_value_shows_the_reason(page, cpwatch).await;
    a_roster_file_is_uploaded_and_a_bad_one_is_refused_by_line(page, files.path()).await;
    the_compliance_prefs_are_saved_with_the_other_notifications(page).await;
    the_page_lists_silent_subjects_first_with_coloured_days(page).await;
    filters_and_the_day_range_live_in_the_address(page).await;
    the_csv_export_holds_exactly_what_is_shown(page).await;
    a_new_delivery_changes_a_cell_without_a_reload(page, cpwatch, files.path()).await;
    the_subject_page_has_the_day_by_day_wear_table(page).await;
}

/// Sets a field's value as a person would leave it (dates included, whatever the
/// browser's date format), telling the page it changed.
async fn set_value(page: &Page, css: &str, value: &str) {
    page.wait_for(css, &format!("{css} is there to fill in")).await;
    page.js(
        "const el = document.querySelector(arguments[0]); el.value = arguments[1]; \
         el.dispatchEvent(new Event('input', { bubbles: true })); el.dispatchEvent(new Event('change', { bubbles: true }));",
        vec![json!(css), json!(value)],
    )
    .await;
}

/// Clicks an element brought to the middle of the window, clear of the sticky bars.
async fn click_centered(page: &Page, css: &str) {
    page.wait_for(css, &format!("{css} is there to click")).await;
    page.js("document.querySelector(arguments[0]).scrollIntoView({ block: 'center' })", vec![json!(css)])
        .await;
    page.click(css).await;
}

async fn protocol(page: &Page) -> Value {
    page.js_async(
        "const done = arguments[arguments.length - 1]; \
         fetch('/api/studies', { cache: 'no-store' }).then((r) => r.json()) \
           .then((list) => done(list.find((s) => s.study_id === arguments[0]).protocol)) \
           .catch((e) => done(String(e)));",
        vec![json!(STUDY)],
    )
    .await
}

async fn the_protocol_is_set_in_settings_and_a_bad_value_shows_the_reason(page: &Page, cpwatch: &Cpwatch) {
    page.client
        .goto(&format!("{}#/settings?section=compliance", cpwatch.dashboard_url))
        .await
        .expect("open the settings");
    page.wait(
        "the compliance settings offer study 189",
        "const s = document.querySelector('[data-testid=protocol-study]'); return !!s && s.value === arguments[0]",
        vec![json!(STUDY)],
    )
    .await;
    let before = protocol(page).await;
    set_value(page, "#protocol-valid-day-minutes", "2000").await;
    page.click("[data-testid=protocol-save]").await;
    let said = page
        .wait(
            "the API's reason for refusing 2000 minutes is shown next to the form",
            "const r = document.querySelector('[data-testid=protocol-result]'); \
             return r && r.classList.contains('outcome-error') ? r.textContent : null",
            vec![],
        )
        .await;
    assert!(
        said.as_str().is_some_and(|s| s.contains("valid_day_minutes must be 1 to 1440")),
        "the 400's message is shown: {said}"
    );
    assert_eq!(protocol(page).await, before, "a refused protocol changes nothing");

    set_value(page, "#protocol-valid-day-minutes", "600").await;
    set_value(page, "#protocol-valid-days-per-week", "1").await;
    set_value(page, "#protocol-monitoring-from", &ago(MONITORING_DAYS)).await;
    set_value(page, "#protocol-monitoring-until", &ago(MONITORING_DAYS + 5)).await;
    page.click("[data-testid=protocol-save]").await;
    page.wait(
        "an end of monitoring before its start is refused with the API's reason",
        "const r = document.querySelector('[data-testid=protocol-result]'); \
         return !!r && r.classList.contains('outcome-error') && r.textContent.includes('is before monitoring_from')",
        vec![],
    )
    .await;
    set_value(page, "#protocol-monitoring-until", "").await;
    page.click("[data-testid=protocol-save]").await;
    page.wait(
        "the corrected protocol is saved",
        "const r = document.querySelector('[data-testid=protocol-result]'); \
         return !!r && r.classList.contains('outcome-ok')",
        vec![],
    )
    .await;
    let saved = protocol(page).await;
    assert_eq!(
        (
            &saved["valid_day_minutes"],
            &saved["valid_days_per_week"],
            &saved["monitoring_from"],
            &saved["monitoring_until"]
        ),
        (&json!(600), &json!(1), &json!(ago(MONITORING_DAYS)), &Value::Null),
        "the protocol as set in the form: {saved}"
    );
}

async fn choose_file(page: &Page, path: &std::path::Path) {
    let input = page.client.find(Locator::Css("#roster-file")).await.expect("the roster file input");
    input.send_keys(&path.to_string_lossy()).await.expect("choose the roster file");
}

async fn a_roster_file_is_uploaded_and_a_bad_one_is_refused_by_line(page: &Page, dir: &std::path::Path) {
    let bad = dir.join("roster-bad.csv");
    std::fs::write(&bad, format!("subject_id,label\n{ANNA},Anna\n{ANNA},Anna again\n"))
        .expect("write a roster");
    choose_file(page, &bad).await;
    page.click("[data-testid=roster-upload]").await;
    let lines = page
        .wait(
            "the bad roster's problems are listed by line",
            "const items = [...document.querySelectorAll('[data-testid=roster-problem]')]; \
             return items.length ? items.map((li) => [li.dataset.line, li.textContent]) : null",
            vec![],
        )
        .await;
    assert_eq!(lines[0][0], json!("3"), "the duplicate is named at its line: {lines}");
    assert!(lines[0][1].as_str().is_some_and(|t| t.starts_with("Line 3: ")), "{lines}");
    let summary = page.text("[data-testid=roster-summary]").await.unwrap_or_default();
    assert!(summary.starts_with("No roster yet"), "nothing was imported: {summary:?}");

    // The hostile label needs quoting in CSV: its quotes are doubled.
    let good = dir.join("roster.csv");
    let quoted = HOSTILE_LABEL.replace('"', "\"\"");
    std::fs::write(
        &good,
        format!(
            "subject_id,label,enrolled_on\n{ANNA},Anna,\n{HOSTILE},\"{quoted}\",\n{NEVER},Never synced,{}\n",
            ago(5)
        ),
    )
    .expect("write a roster");
    choose_file(page, &good).await;
    page.click("[data-testid=roster-upload]").await;
    page.wait(
        "the roster is imported",
        "const r = document.querySelector('[data-testid=roster-result]'); \
         return !!r && r.classList.contains('outcome-ok') && r.textContent.includes('Imported 3 subjects')",
        vec![],
    )
    .await;
    page.wait(
        "the roster summary counts the members and the subject seen but not on it",
        "const t = document.querySelector('[data-testid=roster-summary]').textContent; \
         return t.includes('3 subjects, 2 seen') && t.includes('1 subject seen but not on it')",
        vec![],
    )
    .await;
    let problems =
        page.js("return document.querySelector('[data-testid=roster-problems]').hidden", vec![]).await;
    assert_eq!(problems, json!(true), "the earlier problems are gone");
}

async fn the_compliance_prefs_are_saved_with_the_other_notifications(page: &Page) {
    let shown = page
        .js(
            "return ['pref-notify-silent', 'pref-notify-below-target', 'pref-digest-on'].map((id) => document.getElementById(id).checked) \
               .concat([document.getElementById('pref-digest-at').value])",
            vec![],
        )
        .await;
    assert_eq!(shown, json!([true, true, true, "08:00"]), "the defaults are shown");
    click_centered(page, "#pref-notify-below-target").await;
    set_value(page, "#pref-digest-at", "07:30").await;
    page.click("[data-testid=prefs-save]").await;
    page.wait(
        "the preferences are saved",
        "const r = document.querySelector('[data-testid=prefs-result]'); return !!r && r.classList.contains('outcome-ok')",
        vec![],
    )
    .await;
    let saved = page
        .js_async(
            "const done = arguments[0]; fetch('/api/settings').then((r) => r.json()) \
               .then((s) => done(s.preferences.notifications)).catch((e) => done(String(e)));",
            vec![],
        )
        .await;
    assert_eq!(
        (&saved["silent_subjects"], &saved["below_target"], &saved["digest_at"]),
        (&json!(true), &json!(false), &json!("07:30")),
        "the compliance preferences are saved: {saved}"
    );
    click_centered(page, "#pref-digest-on").await;
    page.click("[data-testid=prefs-save]").await;
    page.wait(
        "the digest is turned off",
        "return fetch('/api/settings').then((r) => r.json()) \
           .then((s) => s.preferences.notifications.digest_at === null)",
        vec![],
    )
    .await;
}

/// The rows' subject ids, in order.
const ROWS: &str =
    "return [...document.querySelectorAll('[data-testid=compliance-row]')].map((r) => r.dataset.subject)";

/// A subject's cell on a day: its state class and its text (visible, then spoken).
async fn cell(page: &Page, subject: &str, day: &str) -> Value {
    page.js(
        "const td = document.querySelector(`[data-testid=compliance-row][data-subject=\"${arguments[0]}\"] td[data-day=\"${arguments[1]}\"]`); \
         if (!td) return null; \
         const state = [...td.classList].find((c) => c.startsWith('day-')); \
         return { state, shown: td.firstChild && td.firstChild.nodeType === 3 ? td.firstChild.textContent : '', text: td.textContent, title: td.title };",
        vec![json!(subject), json!(day)],
    )
    .await
}

async fn api_compliance(page: &Page) -> Value {
    page.js_async(
        "const done = arguments[0]; fetch('/api/studies/189/compliance', { cache: 'no-store' }).then((r) => r.json()) \
           .then(done).catch((e) => done(String(e)));",
        vec![],
    )
    .await
}

async fn the_page_lists_silent_subjects_first_with_coloured_days(page: &Page) {
    page.js("window.__injected = []; new MutationObserver((changes) => { for (const c of changes) for (const n of c.addedNodes) { \
               if (n.nodeType === 1 && (n.matches('img[src=x], script') || n.querySelector('img[src=x], script'))) window.__injected.push(n.outerHTML.slice(0, 200)); } }) \
               .observe(document.documentElement, { childList: true, subtree: true });", vec![]).await;
    page.click("[data-testid=nav-overview]").await;
    page.click(&format!("[data-testid=study-card][data-study=\"{STUDY}\"] [data-testid=compliance-link]"))
        .await;
    page.wait(
        "the study card's link opens the study's compliance view with its four subjects",
        "return location.hash === '#/compliance/189' && document.querySelectorAll('[data-testid=compliance-row]').length === 4",
        vec![],
    )
    .await;
    let title = page.js("return document.title", vec![]).await;
    let rows = page.js(ROWS, vec![]).await;
    let api = api_compliance(page).await;
    let api_order: Vec<Value> = api["subjects"]
        .as_array()
        .expect("the API's subjects")
        .iter()
        .map(|s| s["subject_id"].clone())
        .collect();
    assert_eq!(rows, json!(api_order), "the rows follow the API's order");
    assert_eq!(
        (&rows[0], &rows[1]),
        (&json!(HOSTILE), &json!(NEVER)),
        "the silent subjects come first, the longest silence first: {rows}"
    );
    let silent = page.text("[data-testid=count-silent]").await.unwrap_or_default();
    assert_eq!(silent, "2 silent", "the study's silent count");
    let below = page.text("[data-testid=count-below]").await.unwrap_or_default();
    assert_eq!(below, format!("{} below target", api["below_target"]), "the study's below-target count");
    let columns = page.js("return document.querySelectorAll('[data-testid=compliance-row]:first-child td[data-day]').length", vec![]).await;
    assert_eq!(columns, json!(14), "14 days by default");

    let yesterday = cell(page, ANNA, &ago(1)).await;
    assert_eq!(
        (&yesterday["state"], &yesterday["shown"], &yesterday["text"]),
        (&json!("day-valid"), &json!("10.0"), &json!("10.0 h, valid")),
        "600 minutes is a valid day: {yesterday}"
    );
    let before = cell(page, ANNA, &ago(2)).await;
    assert_eq!(
        (&before["state"], &before["shown"], &before["text"]),
        (&json!("day-below"), &json!("9.9"), &json!("9.9 h, below threshold")),
        "599 minutes is below the threshold and never reads as 10.0: {before}"
    );
    assert!(
        before["title"]
            .as_str()
            .is_some_and(|t| t.contains("599 min") && t.contains("below the 10.0 h threshold")),
        "the tooltip gives the value and the threshold: {before}"
    );
    let none = cell(page, ANNA, &ago(3)).await;
    assert_eq!((&none["state"], &none["text"]), (&json!("day-none"), &json!("no data")), "{none}");
    let hostile = cell(page, HOSTILE, &ago(1)).await;
    assert_eq!((&hostile["state"], &hostile["shown"]), (&json!("day-valid"), &json!("11.6")), "{hostile}");
    let unlisted = cell(page, UNLISTED, &ago(1)).await;
    assert_eq!((&unlisted["state"], &unlisted["shown"]), (&json!("day-valid"), &json!("15.0")), "{unlisted}");
    let not_enrolled = cell(page, NEVER, &ago(6)).await;
    assert_eq!(
        (&not_enrolled["state"], &not_enrolled["text"]),
        (&json!("day-off"), &json!("not expected")),
        "before enrolment a day is not expected: {not_enrolled}"
    );
    let missing = cell(page, NEVER, &ago(4)).await;
    assert_eq!(
        missing["state"],
        json!("day-none"),
        "after enrolment a day with nothing is missing: {missing}"
    );

    let marks = page
        .js(
            "return [...document.querySelectorAll('[data-testid=compliance-row]')].map((r) => [r.dataset.subject, \
               !!r.querySelector('[data-testid=mark-unseen]'), !!r.querySelector('[data-testid=mark-unlisted]')])",
            vec![],
        )
        .await;
    for row in marks.as_array().expect("rows") {
        let subject = row[0].as_str().unwrap_or_default();
        assert_eq!(
            row[1],
            json!(subject == NEVER),
            "only the member who never synced is marked unseen: {marks}"
        );
        assert_eq!(
            row[2],
            json!(subject == UNLISTED),
            "only the subject not on the roster is marked so: {marks}"
        );
    }
    let label = page
        .text(&format!(
            "[data-testid=compliance-row][data-subject=\"{HOSTILE}\"] [data-testid=subject-label]"
        ))
        .await;
    assert_eq!(label.as_deref(), Some(HOSTILE_LABEL), "the hostile label is shown as its characters");
    assert_eq!(
        page.js("return document.querySelector('#view img') === null", vec![]).await,
        json!(true),
        "no image was made of the label"
    );
    assert_eq!(page.js("return window.__injected", vec![]).await, json!([]), "no element was injected");
    assert_eq!(title, json!("Compliance · Study 189 · cpwatch"), "the page's title is its own");
    assert_eq!(page.js("return document.title", vec![]).await, title, "the label never set the title");
    let legend = page.text("[data-testid=compliance-legend]").await.unwrap_or_default();
    assert!(
        legend.contains("Valid day") && legend.contains("No data") && legend.contains("Not expected"),
        "{legend:?}"
    );
}

async fn filters_and_the_day_range_live_in_the_address(page: &Page) {
    page.click("[data-testid=compliance-filter-silent]").await;
    page.wait(
        "the silent filter keeps the two silent subjects, in the address",
        "const rows = [...document.querySelectorAll('[data-testid=compliance-row]')].map((r) => r.dataset.subject); \
         return location.hash.includes('filter=silent') && rows.join() === arguments[0]",
        vec![json!(format!("{HOSTILE},{NEVER}"))],
    )
    .await;
    let api = api_compliance(page).await;
    let below: Vec<String> = api["subjects"]
        .as_array()
        .expect("subjects")
        .iter()
        .filter(|s| s["week"] == "below_target")
        .map(|s| s["subject_id"].as_str().unwrap_or_default().to_string())
        .collect();
    page.click("[data-testid=compliance-filter-below]").await;
    page.wait(
        "the below-target filter keeps exactly the subjects whose week cannot reach the target",
        "const rows = [...document.querySelectorAll('[data-testid=compliance-row]')].map((r) => r.dataset.subject); \
         const empty = document.querySelector('[data-testid=compliance-empty]'); \
         return location.hash.includes('filter=below') && rows.join() === arguments[0] && (rows.length > 0 || !!empty)",
        vec![json!(below.join(","))],
    )
    .await;
    page.click("[data-testid=compliance-range-28]").await;
    page.click("[data-testid=compliance-filter-silent]").await;
    page.wait(
        "28 days with the silent filter, both in the address",
        "const row = document.querySelector('[data-testid=compliance-row]'); \
         return location.hash.includes('days=28') && location.hash.includes('filter=silent') \
           && !!row && row.querySelectorAll('td[data-day]').length === 28",
        vec![],
    )
    .await;
    let hash = page.hash().await;
    page.client.refresh().await.expect("reload the page");
    page.wait(
        "after a reload the same view is back",
        "const rows = [...document.querySelectorAll('[data-testid=compliance-row]')]; \
         return rows.length === 2 && rows[0].querySelectorAll('td[data-day]').length === 28",
        vec![],
    )
    .await;
    assert_eq!(page.hash().await, hash, "a reload keeps the address");
    let off = cell(page, HOSTILE, &ago(MONITORING_DAYS + 1)).await;
    assert_eq!(off["state"], json!("day-off"), "before monitoring began a day is not expected: {off}");
    let first = cell(page, HOSTILE, &ago(MONITORING_DAYS)).await;
    assert_eq!(first["state"], json!("day-none"), "monitoring's first day is expected: {first}");
}

async fn the_csv_export_holds_exactly_what_is_shown(page: &Page) {
    let csv = page
        .js_async(
            "const done = arguments[0]; const made = URL.createObjectURL; \
             URL.createObjectURL = (blob) => { URL.createObjectURL = made; blob.text().then(done); return made.call(URL, blob); }; \
             document.querySelector('[data-testid=compliance-csv]').click();",
            vec![],
        )
        .await;
    let csv = csv.as_str().unwrap_or_else(|| panic!("the export made a file: {csv}")).to_string();
    let lines: Vec<&str> = csv.lines().collect();
    let header: Vec<&str> = lines[0].split(',').collect();
    assert_eq!(header[..4], ["study_id", "subject_id", "label", "on_roster"], "{csv}");
    let days: Vec<String> = (1..=28).rev().map(ago).collect();
    assert_eq!(
        header[header.len() - 28..],
        days.iter().map(String::as_str).collect::<Vec<_>>(),
        "the 28 days shown: {csv}"
    );
    assert_eq!(lines.len(), 3, "a header and the two silent subjects shown: {csv}");
    let quoted = format!("\"{}\"", HOSTILE_LABEL.replace('"', "\"\""));
    assert!(
        lines[1].starts_with(&format!("189,{HOSTILE},{quoted},true,true,true,")),
        "the hostile label, quoted: {}",
        lines[1]
    );
    assert!(lines[1].ends_with(",11.6"), "yesterday's wear hours as shown: {}", lines[1]);
    let never: Vec<&str> = lines[2].split(',').collect();
    assert_eq!(never[1], NEVER, "{csv}");
    let column = |day: &str| header.iter().position(|h| *h == day).expect("a day column");
    assert_eq!(never[column(&ago(6))], "not expected", "before enrolment: {csv}");
    assert_eq!(never[column(&ago(4))], "", "no data: {csv}");
}

async fn a_new_delivery_changes_a_cell_without_a_reload(
    page: &Page,
    cpwatch: &Cpwatch,
    dir: &std::path::Path,
) {
    page.click("[data-testid=compliance-filter-all]").await;
    page.wait(
        "all four subjects again",
        "return document.querySelectorAll('[data-testid=compliance-row]').length === 4",
        vec![],
    )
    .await;
    page.js("window.__cpwatchNoReload = true", vec![]).await;
    let before = cell(page, ANNA, &ago(3)).await;
    assert_eq!(before["state"], json!("day-none"), "{before}");
    send_day(cpwatch, dir, ANNA, &ago(3), 800);
    page.wait(
        "the new day's statistics turn the cell valid, live",
        "const td = document.querySelector(`[data-testid=compliance-row][data-subject=\"${arguments[0]}\"] td[data-day=\"${arguments[1]}\"]`); \
         return !!td && td.classList.contains('day-valid') && td.textContent === '13.3 h, valid'",
        vec![json!(ANNA), json!(ago(3))],
    )
    .await;
    assert_eq!(page.js(NOT_RELOADED, vec![]).await, json!(true), "the cell changed without a reload");
    page.js("window.scrollTo(0, 0)", vec![]).await;
    page.screenshot("10-compliance").await;
}

async fn the_subject_page_has_the_day_by_day_wear_table(page: &Page) {
    page.click(&format!("[data-testid=compliance-row][data-subject=\"{ANNA}\"] [data-testid=subject-link]"))
        .await;
    page.wait_for("[data-testid=subject-wear-table]", "the subject's page opens with its wear table").await;
    assert_eq!(
        page.hash().await,
        format!("#/subjects/{STUDY}/{ANNA}"),
        "the link opens the subject's detail"
    );
    let rows = page
        .js(
            "return [...document.querySelectorAll('[data-testid=wear-row]')].map((r) => [r.dataset.day, \
               ...[...r.cells].slice(1).map((c) => c.textContent)])",
            vec![],
        )
        .await;
    let rows = rows.as_array().expect("wear rows");
    assert_eq!(rows.len(), 28, "the last 28 complete days");
    assert_eq!(rows[0], json!([ago(1), "10.0", "Valid", "0"]), "yesterday first");
    assert_eq!(rows[1], json!([ago(2), "9.9", "Below 10.0 h", "0"]));
    assert_eq!(rows[2], json!([ago(3), "13.3", "Valid", "0"]), "the day that arrived live");
    assert_eq!(rows[3], json!([ago(4), "—", "No data", "0"]));
    page.js("document.querySelector('[data-testid=subject-wear]').scrollIntoView()", vec![]).await;
    page.screenshot("11-subject-wear").await;

    page.js("location.hash = '#/subjects?study=189'", vec![]).await;
    page.wait(
        "the study's subjects page links to its compliance view",
        "const a = document.querySelector('[data-testid=subjects-compliance-link]'); \
         return !!a && !a.hidden && a.getAttribute('href') === '#/compliance/189'",
        vec![],
    )
    .await;
}
