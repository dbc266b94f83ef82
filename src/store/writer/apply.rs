//! What one delivery writes, inside the writer's transaction: its row (or a retry's
//! count), its upload's new state, and the tables derived from them (per-day upload
//! counts, subjects; the totals are kept by triggers, see `schema.rs`). Also the
//! refused log's rows.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection};

use super::{PreparedDelivery, RefusedRequest, Stored, UploadChange};
use crate::event::upload::{Transition, UploadState};
use crate::event::{Event, SubjectDay, UploadEvent, UploadStatus};
use crate::store::{local_day, to_ms, uploads};

pub(super) fn insert_delivery(conn: &Connection, prepared: &PreparedDelivery) -> rusqlite::Result<Stored> {
    let d = &prepared.delivery;
    let event = d.event();
    let at = to_ms(d.received_at);
    let (seq, duplicates): (i64, i64) = conn
        .prepare_cached(
            "INSERT INTO deliveries (delivery_id, body_sha256, event, webhook_id, received_at, peer,
             forwarded_for, auth, headers, body, flag, problem, study_id, subject_id,
             upload_id, status, summary)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
         ON CONFLICT (delivery_id, body_sha256) DO UPDATE
             SET duplicates = duplicates + 1, last_duplicate_at = excluded.received_at
         RETURNING seq, duplicates",
        )?
        .query_row(
            params![
                d.delivery_id,
                &prepared.body_sha256[..],
                d.event_name,
                d.webhook_id,
                at,
                d.peer,
                d.forwarded_for,
                d.auth,
                prepared.headers_json,
                d.body,
                prepared.flag,
                prepared.problem,
                event.and_then(Event::study_id),
                event.and_then(Event::subject_id),
                event.and_then(Event::upload_id),
                event.and_then(Event::status),
                prepared.summary,
            ],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
    if duplicates > 0 {
        return Ok(Stored::Duplicate { seq });
    }
    let Some(event) = event else {
        return Ok(Stored::New { seq, upload: None });
    };
    let upload = match event {
        Event::Upload(upload) => Some(apply_upload(conn, upload, d.received_at)?),
        _ => None,
    };
    // The upload's subject's counts. An upload takes the subject its delivery names, so
    // they go into that subject's row, written below, in the same statement; only a
    // delivery that names no subject needs an update of its own.
    let mut counts = upload
        .as_ref()
        .and_then(|(change, delta)| change.state.subject_id.as_deref().map(|subject| (subject, *delta)));
    if let Some(study) = event.study_id() {
        conn.prepare_cached("INSERT INTO studies (study_id, first_seen_at, last_delivery_at) VALUES (?1, ?2, ?2)
             ON CONFLICT (study_id) DO UPDATE SET last_delivery_at = max(last_delivery_at, excluded.last_delivery_at)")?.execute(params![study, at],
        )?;
        if let Some(subject) = event.subject_id() {
            let other = i64::from(!matches!(event, Event::Upload(_)));
            let (delta, last_upload_at) = match counts.take_if(|(of, _)| *of == subject) {
                Some((_, delta)) => (delta, Some(at)),
                None => ([0; 3], None),
            };
            // max() with a NULL is NULL, hence the coalesce: an upload sets last_upload_at
            // when there is none yet, other events leave it as it is.
            conn.prepare_cached("INSERT INTO subjects (study_id, subject_id, subject_identifier, first_seen_at, last_delivery_at,
                     other_events, uploads_started, uploads_completed, uploads_error, last_upload_at)
                 VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (study_id, subject_id) DO UPDATE SET
                     subject_identifier = coalesce(excluded.subject_identifier, subject_identifier),
                     last_delivery_at = max(last_delivery_at, excluded.last_delivery_at),
                     other_events = other_events + excluded.other_events,
                     uploads_started = uploads_started + excluded.uploads_started,
                     uploads_completed = uploads_completed + excluded.uploads_completed,
                     uploads_error = uploads_error + excluded.uploads_error,
                     last_upload_at = coalesce(max(last_upload_at, excluded.last_upload_at), last_upload_at,
                         excluded.last_upload_at)")?.execute(params![study, subject, event.subject_identifier(), at, other,
                         delta[0], delta[1], delta[2], last_upload_at],
            )?;
        }
    }
    if let (Some((subject, delta)), Event::Upload(upload_event)) = (counts, event) {
        // A delivery without a subject id, for an upload whose subject is known from before.
        conn.prepare_cached("UPDATE subjects SET uploads_started = uploads_started + ?3, uploads_completed = uploads_completed + ?4,
                 uploads_error = uploads_error + ?5, last_upload_at = max(coalesce(last_upload_at, 0), ?6)
             WHERE study_id = ?1 AND subject_id = ?2")?.execute(params![upload_event.study_id, subject, delta[0], delta[1], delta[2], at],
        )?;
    }
    if let Some(day) = event.subject_day() {
        apply_subject_day(conn, &day, &d.event_name, seq)?;
    }
    Ok(Stored::New { seq, upload: upload.map(|(change, _)| change) })
}

/// A subject-day's wear time: the later delivery (by the order received) replaces an
/// earlier one, so a re-delivery or a retry of an old one changes nothing.
fn apply_subject_day(conn: &Connection, day: &SubjectDay<'_>, event: &str, seq: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO subject_days (study_id, subject_id, day, wear_minutes, total_minutes, event, delivery_seq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (study_id, subject_id, day) DO UPDATE SET
             wear_minutes = excluded.wear_minutes, total_minutes = excluded.total_minutes,
             event = excluded.event, delivery_seq = excluded.delivery_seq
         WHERE excluded.delivery_seq > subject_days.delivery_seq",
    )?
    .execute(params![
        day.study_id,
        day.subject_id,
        day.day.format("%Y-%m-%d").to_string(),
        day.wear_minutes,
        day.total_minutes,
        event,
        seq
    ])?;
    Ok(())
}

/// The upload's new state, and how its subject's counts change (started, completed, error):
/// each upload is counted once, under its current status.
fn apply_upload(
    conn: &Connection,
    event: &UploadEvent,
    at: DateTime<Utc>,
) -> rusqlite::Result<(UploadChange, [i64; 3])> {
    let existing = uploads::state_and_first_day(conn, &event.study_id, &event.upload_id)?;
    let (state, transition, day) = match existing {
        Some((mut state, first_day)) => {
            let transition = state.apply(event, at);
            (state, transition, first_day)
        }
        None => (UploadState::new(event, at), Transition::Created, local_day(at)),
    };
    let local = |t: Option<chrono::NaiveDateTime>| t.map(|t| t.format("%Y-%m-%dT%H:%M:%S").to_string());
    conn.prepare_cached(
        "INSERT INTO uploads (study_id, upload_id, subject_id, status, started_at, completed_at,
             failed_at, error_message, first_epoch_utc, last_epoch_utc, first_epoch_subject_tz,
             last_epoch_subject_tz, first_seen_at, first_seen_day, updated_at, deliveries)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?13, 1)
         ON CONFLICT (study_id, upload_id) DO UPDATE SET
             subject_id = excluded.subject_id, status = excluded.status,
             started_at = excluded.started_at, completed_at = excluded.completed_at,
             failed_at = excluded.failed_at, error_message = excluded.error_message,
             first_epoch_utc = excluded.first_epoch_utc, last_epoch_utc = excluded.last_epoch_utc,
             first_epoch_subject_tz = excluded.first_epoch_subject_tz,
             last_epoch_subject_tz = excluded.last_epoch_subject_tz,
             updated_at = excluded.updated_at, deliveries = deliveries + 1",
    )?
    .execute(params![
        event.study_id,
        event.upload_id,
        state.subject_id,
        state.status.as_str(),
        state.started_at.map(to_ms),
        state.completed_at.map(to_ms),
        state.failed_at.map(to_ms),
        state.error_message,
        state.first_epoch_utc.map(to_ms),
        state.last_epoch_utc.map(to_ms),
        local(state.first_epoch_subject_tz),
        local(state.last_epoch_subject_tz),
        to_ms(at),
        day,
    ])?;
    let mut delta = [0i64; 3];
    let slot = |s: UploadStatus| match s {
        UploadStatus::Started => 0,
        UploadStatus::Completed => 1,
        UploadStatus::Error => 2,
    };
    match transition {
        Transition::Created => delta[slot(state.status)] += 1,
        Transition::Changed(before) => {
            delta[slot(before)] -= 1;
            delta[slot(state.status)] += 1;
        }
        Transition::Unchanged => {}
    }
    // Keep the per-day counts: the upload counts on the day it was first seen, under
    // its current status.
    match transition {
        Transition::Created => count_day(conn, &event.study_id, &day, state.status.as_str(), 1)?,
        Transition::Changed(before) => {
            count_day(conn, &event.study_id, &day, before.as_str(), -1)?;
            count_day(conn, &event.study_id, &day, state.status.as_str(), 1)?;
        }
        Transition::Unchanged => {}
    }
    let change = UploadChange {
        study_id: event.study_id.clone(),
        upload_id: event.upload_id.clone(),
        state,
        transition,
    };
    Ok((change, delta))
}

fn count_day(conn: &Connection, study: &str, day: &str, status: &str, delta: i64) -> rusqlite::Result<()> {
    if delta < 0 {
        // A day already removed by retention stays removed.
        conn.prepare_cached(
            "UPDATE upload_days SET uploads = uploads + ?4 WHERE study_id = ?1 AND day = ?2 AND status = ?3",
        )?
        .execute(params![study, day, status, delta])?;
    } else {
        conn.prepare_cached(
            "INSERT INTO upload_days (study_id, day, status, uploads) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (study_id, day, status) DO UPDATE SET uploads = uploads + excluded.uploads",
        )?
        .execute(params![study, day, status, delta])?;
    }
    Ok(())
}

pub(super) fn insert_refused(conn: &Connection, r: &RefusedRequest) -> rusqlite::Result<()> {
    let headers = serde_json::to_string(&r.headers).unwrap_or_else(|_| "[]".into());
    conn.prepare_cached(
        "INSERT INTO refused (received_at, peer, method, path, status, reason, webhook_id, event,
             delivery_id, headers, body_prefix, body_len)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        to_ms(r.received_at),
        r.peer,
        r.method,
        r.path,
        r.status,
        r.reason,
        r.webhook_id,
        r.event,
        r.delivery_id,
        headers,
        r.body_prefix,
        r.body_len.map(|n| n as i64),
    ])?;
    Ok(())
}
