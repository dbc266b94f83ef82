//! The deliveries the generator sends: `upload completed` events like CentrePoint's,
//! each with its own delivery id and upload id, built and signed before the clock
//! starts so that HMAC and formatting cost the generator nothing while it measures.

use anyhow::Context as _;
use bytes::{Bytes, BytesMut};
use cpwatch::receive::signature::{self, Scheme};
use hyper::header::HeaderValue;

/// How many studies the uploads are spread over, as on a busy multi-study server.
const STUDIES: u64 = 20;
/// How many subjects each study has.
const SUBJECTS_PER_STUDY: u64 = 500;

/// One delivery, ready to send. The three parts are slices of one shared buffer, so
/// handing them to a request is a reference-count increment, not a copy.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub body: Bytes,
    pub delivery_id: HeaderValue,
    pub signature: HeaderValue,
}

/// The body of `upload completed` number `upload_id`, shaped like the fixture
/// `tests/fixtures/upload-completed.http` (same fields, same spacing, ids as strings).
pub fn upload_completed_body(upload_id: u64) -> String {
    let study = 100 + upload_id % STUDIES;
    let subject = 40_000 + study * SUBJECTS_PER_STUDY + upload_id % SUBJECTS_PER_STUDY;
    format!(
        "{{\n    \"status\" : \"completed\",\n    \"firstEpochUTC\":\"2016-06-14T20:46:00.0000000\",\n    \
         \"firstEpochSubjectTZ\":\"2016-06-14T15:46:00.0000000\",\n    \
         \"lastEpochUTC\":\"2016-06-14T20:47:00.0000000\",\n    \
         \"lastEpochSubjectTZ\":\"2016-06-14T15:47:00.0000000\",\n    \
         \"uploadId\" : \"{upload_id}\",\n    \"subjectId\" : \"{subject}\",\n    \"studyId\" : \"{study}\"\n}}"
    )
}

/// Builds `count` signed deliveries with upload ids `first_upload_id..`.
pub fn build(count: usize, first_upload_id: u64, passcode: &[u8]) -> anyhow::Result<Vec<Delivery>> {
    // Three slices per delivery in one buffer: body, delivery id, signature.
    let mut buffer = BytesMut::with_capacity(count * 480);
    let mut ranges = Vec::with_capacity(count);
    for n in 0..count as u64 {
        let body = upload_completed_body(first_upload_id + n);
        let id = uuid::Uuid::new_v4().hyphenated().to_string();
        let signature = signature::sign(Scheme::Base64Sha256, passcode, body.as_bytes())?;
        let start = buffer.len();
        buffer.extend_from_slice(body.as_bytes());
        let body_end = buffer.len();
        buffer.extend_from_slice(id.as_bytes());
        let id_end = buffer.len();
        buffer.extend_from_slice(signature.as_bytes());
        ranges.push((start, body_end, id_end, buffer.len()));
    }
    let shared = buffer.freeze();
    ranges
        .into_iter()
        .map(|(start, body_end, id_end, end)| {
            Ok(Delivery {
                body: shared.slice(start..body_end),
                delivery_id: HeaderValue::from_maybe_shared(shared.slice(body_end..id_end))
                    .context("a delivery id is not a header value")?,
                signature: HeaderValue::from_maybe_shared(shared.slice(id_end..end))
                    .context("a signature is not a header value")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_prebuilt_delivery_is_signed_over_its_exact_body() {
        let deliveries = build(50, 7_000_000, b"bench passcode").expect("deliveries");
        for d in &deliveries {
            let header = d.signature.to_str().expect("ascii signature");
            assert_eq!(
                signature::verify(b"bench passcode", &d.body, header),
                Ok(Scheme::Base64Sha256),
                "the signature must be what cpwatch accepts"
            );
            assert!(signature::verify(b"another passcode", &d.body, header).is_err());
        }
    }

    #[test]
    fn delivery_and_upload_ids_are_unique() {
        let deliveries = build(1000, 1, b"k").expect("deliveries");
        let ids: std::collections::HashSet<_> = deliveries.iter().map(|d| d.delivery_id.clone()).collect();
        let bodies: std::collections::HashSet<_> = deliveries.iter().map(|d| d.body.clone()).collect();
        assert_eq!(ids.len(), 1000, "each delivery has its own X-ActiGraph-Delivery");
        assert_eq!(bodies.len(), 1000, "each delivery is about its own upload");
    }

    #[test]
    fn bodies_parse_as_the_upload_event_cpwatch_expects() {
        let body = upload_completed_body(85_045);
        let parsed = cpwatch::event::parse("upload", body.as_bytes()).expect("a valid upload event");
        assert!(parsed.warnings.is_empty(), "no warnings: {:?}", parsed.warnings);
        assert_eq!(parsed.event.upload_id(), Some("85045"));
    }
}
