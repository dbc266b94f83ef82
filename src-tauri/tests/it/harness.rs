//! What the shell and desktop suites both need: upload deliveries sent as CentrePoint would.

use std::time::Duration;

use cpwatch::emulator::send::{self, Body, Fields, SendAuth, SendOptions, Template};

/// Sends `count` `upload` deliveries with `status` for subject 44732 of `study` to the
/// receiver at `url` (unauthenticated, webhook 15), and checks that every one is
/// acknowledged. A failure carries the error message "Device clock invalid".
pub async fn send_uploads(url: &str, status: &str, study: &str, upload: Option<&str>, count: usize) {
    let template = Template {
        event: "upload".into(),
        webhook_id: Some("15".into()),
        extra_headers: Vec::new(),
        body: Body::Generated(Fields {
            status: Some(status.into()),
            study: Some(study.into()),
            subject: Some("44732".into()),
            upload: upload.map(str::to_string),
            message: (status == "error").then(|| "Device clock invalid".into()),
        }),
        delivery_id: None,
        validation_code: None,
    };
    let options = SendOptions {
        url: url.into(),
        auth: SendAuth::None,
        count,
        concurrency: count,
        retries: 2,
        timeout: Duration::from_secs(20),
    };
    let outcomes = send::send(template, options).await.expect("send");
    assert!(outcomes.iter().all(send::Outcome::ok), "the receiver acknowledges every delivery: {outcomes:?}");
}
