// Pieces several views share: tables of uploads, a delivery's raw content, empty and
// error states, and the inline result of an action.

import { h } from './dom.js';
import {
  authPill, count, duration, eventName, flagName, plural, time, uploadPill, utcRange, utcRangeShort,
} from './format.js';
import { links } from './route.js';

export function loading(text = 'Loading…') {
  return h('p', { class: 'loading', role: 'status' }, text);
}

/** An empty state that says what to do next. */
export function empty(title, body, ...actions) {
  return h('div', { class: 'empty', testid: 'empty-state' },
    h('p', { class: 'empty-title' }, title),
    body ? h('p', { class: 'empty-body' }, body) : null,
    actions.length ? h('p', { class: 'empty-actions' }, actions) : null);
}

export function errorBox(message, testid = 'error') {
  return h('div', { class: 'error-box', role: 'alert', testid }, message);
}

/** An inline place for an action's outcome, next to the button that caused it. */
export function outcome(testid) {
  const el = h('p', { class: 'outcome', role: 'status', 'aria-live': 'polite', testid });
  return {
    el,
    ok(text) {
      el.className = 'outcome outcome-ok';
      el.textContent = text;
    },
    fail(text) {
      el.className = 'outcome outcome-error';
      el.setAttribute('role', 'alert');
      el.textContent = text;
    },
    clear() {
      el.className = 'outcome';
      el.textContent = '';
    },
  };
}

/** A study as people know it: its name, with the id beside it. */
export function studyName(ctx, studyId, { link = false, bare = true } = {}) {
  if (studyId === null || studyId === undefined) return h('span', { class: 'muted' }, '—');
  const label = ctx.studyLabel(studyId);
  const content = label ? [h('span', { class: 'study-label' }, label), ' ', h('span', { class: 'id' }, studyId)] : [h('span', { class: 'id-main' }, bare ? studyId : `Study ${studyId}`)];
  return link ? h('a', { href: links.subjects(studyId), class: 'study-name' }, content) : h('span', { class: 'study-name' }, content);
}

export function studyTitle(ctx, studyId, label) {
  const name = label ?? ctx.studyLabel(studyId);
  return name || `Study ${studyId}`;
}

const uploadKey = (row) => `${row.study_id}\u0000${row.upload_id}`;

/**
 * The uploads table. `seen`: keys rendered last time, so rows that just arrived can be
 * highlighted on a live refresh (null on a first render).
 */
export function uploadsTable(rows, ctx, { showStudy = true, showSubject = true, seen = null, testid = 'uploads-table', caption } = {}) {
  const stalled = ctx.prefs().stalled_after_minutes;
  const head = ['Last update', showStudy && 'Study', showSubject && 'Subject', 'Upload', 'Status', 'Duration', 'Epoch range (UTC)', 'Error message'].filter(Boolean);
  const numeric = new Set(['Duration']);
  const body = rows.map((row) => {
    const detail = links.upload(row.study_id, row.upload_id);
    const tr = h('tr', {
      testid: 'upload-row',
      class: ['clickable', seen && !seen.has(uploadKey(row)) && 'is-new', row.status === 'error' && 'row-error'],
      dataset: { study: row.study_id, upload: row.upload_id, status: row.status, href: detail },
    },
      h('td', { class: 'nowrap' }, time(row.updated_at, { short: true })),
      showStudy ? h('td', { class: 'study' }, studyName(ctx, row.study_id)) : null,
      showSubject ? h('td', null, row.subject_id ? h('a', { href: links.subject(row.study_id, row.subject_id) }, row.subject_id) : h('span', { class: 'muted' }, '—')) : null,
      h('td', null, h('a', { href: detail, class: 'row-link', testid: 'upload-link', 'aria-label': `Upload ${row.upload_id} details` }, row.upload_id)),
      h('td', null, uploadPill(row, stalled)),
      h('td', { class: 'nowrap num' }, duration(row.duration_seconds)),
      h('td', { class: 'small epochs' }, utcRangeShort(row.first_epoch_utc, row.last_epoch_utc)),
      h('td', { class: 'message' }, row.error_message ? h('span', { class: 'clip', title: row.error_message }, row.error_message) : null));
    return tr;
  });
  const table = h('table', { class: 'table uploads', testid },
    caption ? h('caption', { class: 'sr-only' }, caption) : null,
    h('thead', null, h('tr', null, head.map((name) => h('th', { scope: 'col', class: numeric.has(name) ? 'num' : null }, name)))),
    h('tbody', null, body));
  clickableRows(table);
  return h('div', { class: 'table-wrap' }, table);
}

export function uploadKeys(rows) {
  return new Set(rows.map(uploadKey));
}

/** A click anywhere on a row opens its detail; the row's real link stays the keyboard path. */
export function clickableRows(table) {
  table.addEventListener('click', (e) => {
    const row = e.target.closest('tr[data-href]');
    if (!row || e.target.closest('a, button, input, select, summary, details')) return;
    if (String(window.getSelection() || '').length) return;
    location.hash = row.dataset.href;
  });
}

function prettyBody(detail) {
  if (detail.body === null || detail.body === undefined) {
    if (detail.body_base64) {
      return [h('p', { class: 'note' }, 'The body is not UTF-8 text; here it is as base64:'), h('pre', { class: 'code', testid: 'delivery-body' }, detail.body_base64)];
    }
    return h('p', { class: 'muted' }, 'No body.');
  }
  if (detail.body === '') return h('p', { class: 'muted', testid: 'delivery-body' }, 'Empty body.');
  try {
    return h('pre', { class: 'code', testid: 'delivery-body' }, JSON.stringify(JSON.parse(detail.body), null, 2));
  } catch {
    return [h('p', { class: 'note' }, 'The body is not valid JSON; shown as received:'), h('pre', { class: 'code', testid: 'delivery-body' }, detail.body)];
  }
}

export function headersTable(headers, testid = 'delivery-headers') {
  if (!headers || !headers.length) return h('p', { class: 'muted', testid }, 'No headers recorded.');
  return h('div', { class: 'table-wrap' }, h('table', { class: 'table headers', testid },
    h('tbody', null, headers.map(([name, value]) => h('tr', null, h('th', { scope: 'row' }, name), h('td', null, value))))));
}

function fact(term, ...value) {
  return [h('dt', null, term), h('dd', null, value)];
}

/** One delivery whole: its facts, authentication outcome, raw headers and pretty body. */
export function deliveryDetail(detail, { facts = true } = {}) {
  const from = detail.forwarded_for ? `${detail.forwarded_for} (via ${detail.peer || 'proxy'})` : detail.peer;
  return h('div', { class: 'delivery-detail', testid: 'delivery-detail', dataset: { seq: detail.seq } },
    facts ? h('dl', { class: 'facts' },
      fact('Delivery', h('code', null, detail.delivery_id), ' ', h('a', { href: links.delivery(detail.seq), class: 'small' }, `#${detail.seq}`)),
      fact('Event', eventName(detail.event), detail.event && eventName(detail.event).toLowerCase() !== detail.event ? h('span', { class: 'id' }, ` ${detail.event}`) : null),
      fact('Webhook', detail.webhook_id ?? '—'),
      fact('Received', time(detail.received_at)),
      fact('From', from || '—'),
      fact('Authentication', h('span', { testid: 'delivery-auth' }, authPill(detail.auth), ' ', h('span', { class: 'small' }, detail.auth))),
      detail.flag ? fact('Flag', h('span', { class: 'pill pill-stalled' }, flagName(detail.flag))) : null,
      detail.problem ? fact('Problem', detail.problem) : null,
      detail.duplicates ? fact('Retries', `${plural(detail.duplicates, 'retry', 'retries')} received, last `, time(detail.last_duplicate_at)) : null) : null,
    h('div', { class: 'raw-grid' },
      h('section', { class: 'raw-part' }, h('h4', null, 'Headers'), headersTable(detail.headers)),
      h('section', { class: 'raw-part' }, h('h4', null, 'Body'), prettyBody(detail))));
}

/** What a non-upload event said, in a line: wear minutes and steps, files, errors. */
export function eventSummary(event) {
  const d = event.detail;
  if (!d) return event.summary;
  const parts = [];
  const num = (v, unit) => (v === null || v === undefined ? null : `${count(Math.round(v))} ${unit}`);
  switch (d.type) {
    case 'daily_statistics_complete':
    case 'cp2_daily_statistics_complete':
      if (d.date) parts.push(d.date);
      if (d.wear_minutes !== null && d.wear_minutes !== undefined) parts.push(`${count(Math.round(d.wear_minutes))} wear minutes (${duration(d.wear_minutes * 60)})`);
      parts.push(num(d.steps, 'steps'));
      parts.push(num(d.mvpa, 'MVPA minutes'));
      parts.push(num(d.calories, 'kcal'));
      break;
    case 'raw_processing_complete':
      if (d.monitor_serial) parts.push(`monitor ${d.monitor_serial}`);
      if (d.min_event || d.max_event) parts.push(`data ${utcRange(d.min_event, d.max_event)}`);
      if (d.error_message) parts.push(d.error_message);
      break;
    case 'data_retrieval_complete':
      parts.push(plural(d.files ? d.files.length : 0, 'file'));
      if (d.files && d.files.length) parts.push(d.files.map((f) => f.file_name).filter(Boolean).slice(0, 3).join(', '));
      if (d.error_message) parts.push(d.error_message);
      break;
    default:
      return event.summary;
  }
  const text = parts.filter(Boolean).join(' · ');
  return text || event.summary;
}
