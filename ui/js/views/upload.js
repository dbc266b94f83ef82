// Upload detail: what happened to one upload, why it failed, its epoch range in UTC and
// in the subject's time zone, and every delivery about it with raw headers and body.

import * as api from '../api.js';
import { changeTracker, h, replace, rerender } from '../dom.js';
import { deliveryDetail, errorBox, loading, studyName } from '../components.js';
import { authPill, duration, localText, naiveRange, pill, plural, time, uploadPill, utcRange } from '../format.js';
import { links } from '../route.js';

function fact(term, ...value) {
  return [h('dt', null, term), h('dd', null, value)];
}

function epochs(u) {
  if (!u.first_epoch_utc && !u.last_epoch_utc && !u.first_epoch_subject_tz && !u.last_epoch_subject_tz) {
    return h('p', { class: 'muted' }, u.status === 'completed'
      ? 'The completion did not say which epochs it added.'
      : 'CentrePoint reports the epoch range when an upload completes.');
  }
  const localRange = u.first_epoch_utc && u.last_epoch_utc ? `${localText(u.first_epoch_utc)} → ${localText(u.last_epoch_utc)}` : '';
  return h('dl', { class: 'facts' },
    fact('UTC', utcRange(u.first_epoch_utc, u.last_epoch_utc) || '—'),
    fact('Subject\'s time zone', naiveRange(u.first_epoch_subject_tz, u.last_epoch_subject_tz) || '—'),
    localRange ? fact('Your time', localRange) : null);
}

function timelineItem(d) {
  return h('li', { class: 'timeline-item', testid: 'timeline-delivery', dataset: { seq: d.seq, status: d.status || '' } },
    h('span', { class: ['timeline-dot', `dot-${d.status || 'none'}`], 'aria-hidden': 'true' }),
    h('div', { class: 'timeline-body' },
      h('div', { class: 'timeline-line' },
        time(d.received_at), ' ', pill(d.status), ' ', authPill(d.auth),
        d.duplicates ? h('span', { class: 'pill pill-neutral', title: 'CentrePoint sent this delivery again; it was stored once' }, plural(d.duplicates, 'retry', 'retries')) : null),
      h('p', { class: 'timeline-summary' }, d.summary),
      h('details', { class: 'raw', dataset: { key: `seq-${d.seq}` } },
        h('summary', null, 'Raw headers and body'),
        deliveryDetail(d))));
}

function render(data, ctx) {
  const u = data.upload;
  const back = ctx.recall('uploads-hash') || links.uploads({ study: u.study_id });
  const stalled = ctx.prefs().stalled_after_minutes;
  return h('section', { class: 'view', testid: 'view-upload-detail' },
    h('a', { class: 'back', href: back, testid: 'back-to-uploads' }, '← Uploads'),
    h('header', { class: 'view-head' },
      h('div', null,
        h('h1', { tabindex: '-1' }, `Upload ${u.upload_id} `, h('span', { testid: 'upload-status' }, uploadPill(u, stalled))),
        h('p', { class: 'subtitle' }, studyName(ctx, u.study_id, { link: true, bare: false }), ' · ', u.subject_id ? h('a', { href: links.subject(u.study_id, u.subject_id) }, `Subject ${u.subject_id}`) : 'no subject'))),
    u.error_message ? h('section', { class: 'failure', testid: 'upload-error', 'aria-labelledby': 'failure-title' },
      h('h2', { id: 'failure-title' }, 'Why it failed'),
      h('p', { class: 'failure-message' }, u.error_message),
      u.failed_at ? h('p', { class: 'small muted' }, 'Reported ', time(u.failed_at), u.status !== 'error' ? ' (the upload has since changed status)' : '') : null) : null,
    h('div', { class: 'panels' },
      h('section', { class: 'panel', testid: 'upload-summary', 'aria-labelledby': 'summary-title' },
        h('h2', { id: 'summary-title' }, 'Summary'),
        h('dl', { class: 'facts' },
          fact('Status', uploadPill(u, stalled)),
          fact('Study', studyName(ctx, u.study_id)),
          fact('Subject', u.subject_id ? h('a', { href: links.subject(u.study_id, u.subject_id) }, u.subject_id) : '—'),
          fact('First seen', time(u.first_seen_at)),
          u.started_at ? fact('Started', time(u.started_at)) : null,
          u.completed_at ? fact('Completed', time(u.completed_at)) : null,
          u.failed_at ? fact('Failed', time(u.failed_at)) : null,
          fact('Duration', u.duration_seconds !== null && u.duration_seconds !== undefined ? duration(u.duration_seconds) : h('span', { class: 'muted' }, u.status === 'started' ? 'still running' : 'unknown')),
          fact('Last update', time(u.updated_at)))),
      h('section', { class: 'panel', testid: 'upload-epochs', 'aria-labelledby': 'epochs-title' },
        h('h2', { id: 'epochs-title' }, 'Epoch range'),
        epochs(u))),
    h('section', { class: 'panel', testid: 'upload-timeline', 'aria-labelledby': 'timeline-title' },
      h('h2', { id: 'timeline-title' }, `Deliveries (${data.timeline.length})`),
      data.timeline.length
        ? h('ol', { class: 'timeline' }, data.timeline.map(timelineItem))
        : h('p', { class: 'muted' }, 'No deliveries stored for this upload (they may have been removed by the retention setting).')),
    h('p', { class: 'view-links' },
      u.subject_id ? h('a', { href: links.uploads({ study: u.study_id, subject: u.subject_id }) }, `All uploads of subject ${u.subject_id}`) : null,
      h('a', { href: links.uploads({ study: u.study_id }) }, 'All uploads of this study')));
}

export function mount(root, route, ctx, studyId, uploadId) {
  ctx.setTitle(`Upload ${uploadId}`);
  replace(root, h('section', { class: 'view', testid: 'view-upload-detail' }, loading()));
  let shown = false;
  const changed = changeTracker();
  const load = async () => {
    let data;
    try {
      data = await api.get(api.path('uploads', studyId, uploadId), null, ctx.signal);
    } catch (e) {
      if (e.name === 'AbortError') return;
      if (!shown) {
        replace(root, h('section', { class: 'view', testid: 'view-upload-detail' },
          h('a', { class: 'back', href: ctx.recall('uploads-hash') || links.uploads(), testid: 'back-to-uploads' }, '← Uploads'),
          h('h1', { tabindex: '-1' }, `Upload ${uploadId}`),
          errorBox(e.status === 404 ? `No upload ${uploadId} in study ${studyId}. It may not have arrived yet, or retention removed it.` : e.message)));
      }
      return;
    }
    if (!ctx.alive() || !changed(data)) return;
    rerender(root, () => render(data, ctx));
    shown = true;
  };
  load();
  return { refresh: load };
}
