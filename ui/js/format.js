// How values read: times in the viewer's local time (UTC on hover), durations, counts,
// statuses as a coloured pill that also says the status in words.

import { h } from './dom.js';

const full = new Intl.DateTimeFormat(undefined, {
  year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
});
const clock = new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit', second: '2-digit' });
const shortClock = new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit' });
const shortThisYear = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: 'numeric', minute: '2-digit' });
const shortOtherYear = new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: 'numeric', minute: '2-digit' });
const dayMonth = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });
const weekday = new Intl.DateTimeFormat(undefined, { weekday: 'short', month: 'short', day: 'numeric' });
const numbers = new Intl.NumberFormat();

const pad = (n) => String(n).padStart(2, '0');

function parseTime(iso) {
  if (!iso) return null;
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? null : date;
}

/** `2026-11-26 18:33:21 UTC` */
function utcText(iso) {
  const d = parseTime(iso);
  if (!d) return '';
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`;
}

function sameDay(a, b) {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
}

/** Local time: `Today 18:33:21`, `Yesterday 09:02:11`, or the full date. */
export function localText(iso) {
  const d = parseTime(iso);
  if (!d) return '';
  const now = new Date();
  if (sameDay(d, now)) return `Today ${clock.format(d)}`;
  const yesterday = new Date(now.getFullYear(), now.getMonth(), now.getDate() - 1);
  if (sameDay(d, yesterday)) return `Yesterday ${clock.format(d)}`;
  return full.format(d);
}

/** Compact local time for tables: `Today 6:34 PM`, `Nov 24, 6:34 PM`. */
function shortText(iso) {
  const d = parseTime(iso);
  if (!d) return '';
  const now = new Date();
  if (sameDay(d, now)) return `Today ${shortClock.format(d)}`;
  const yesterday = new Date(now.getFullYear(), now.getMonth(), now.getDate() - 1);
  if (sameDay(d, yesterday)) return `Yesterday ${shortClock.format(d)}`;
  return (d.getFullYear() === now.getFullYear() ? shortThisYear : shortOtherYear).format(d);
}

/** `just now`, `5 min ago`, `3 h ago`, `4 days ago`. */
export function relativeText(iso) {
  const d = parseTime(iso);
  if (!d) return '';
  const seconds = Math.round((Date.now() - d.getTime()) / 1000);
  if (seconds < 10) return 'just now';
  if (seconds < 60) return `${seconds} s ago`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ago`;
  return `${Math.floor(hours / 24)} days ago`;
}

/** A <time> showing local time (or relative time), with UTC and local time on hover. */
export function time(iso, { relative = false, short = false, empty = '—' } = {}) {
  if (!parseTime(iso)) return h('span', { class: 'muted' }, empty);
  return h('time', {
    datetime: iso,
    title: `${localText(iso)} your time\n${utcText(iso)}`,
    dataset: relative ? { relative: '1' } : undefined,
  }, relative ? relativeText(iso) : short ? shortText(iso) : localText(iso));
}

/** Keeps relative times ("3 min ago") true while the page stays open. */
export function refreshRelativeTimes(root = document) {
  for (const el of root.querySelectorAll('time[data-relative]')) el.textContent = relativeText(el.getAttribute('datetime'));
}

/** A local calendar day (`2026-11-26`, as the API sends days) as `Thu, Nov 26`. */
export function dayText(day, { long = false } = {}) {
  const [y, m, d] = String(day).split('-').map(Number);
  const date = new Date(y, m - 1, d);
  return Number.isNaN(date.getTime()) ? String(day) : (long ? weekday : dayMonth).format(date);
}

export function count(n) {
  return numbers.format(n ?? 0);
}

/** `45 s`, `3 min 12 s`, `2 h 5 min`, `1 d 3 h`. */
export function duration(seconds) {
  if (seconds === null || seconds === undefined) return '';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return s % 60 ? `${m} min ${s % 60} s` : `${m} min`;
  const hours = Math.floor(m / 60);
  if (hours < 24) return m % 60 ? `${hours} h ${m % 60} min` : `${hours} h`;
  const days = Math.floor(hours / 24);
  return hours % 24 ? `${days} d ${hours % 24} h` : `${days} d`;
}

/** A time the subject's device recorded, with no zone (`2016-06-14T15:46:00`). */
function naiveText(text) {
  return text ? String(text).replace('T', ' ') : '';
}

/** An epoch range in UTC to the minute, for tables (the column says UTC). */
export function utcRangeShort(first, last) {
  if (!first && !last) return '';
  const a = utcText(first).slice(0, 16);
  const b = utcText(last).slice(0, 16);
  if (!a || !b) return `${a || '?'} → ${b || '?'}`;
  return a.slice(0, 10) === b.slice(0, 10) ? `${a} → ${b.slice(11)}` : `${a} → ${b}`;
}

/** An epoch range in UTC: `2016-06-14 20:46:00 → 20:47:00 UTC` (the date once if it is the same). */
export function utcRange(first, last) {
  if (!first && !last) return '';
  const a = utcText(first).replace(' UTC', '');
  const b = utcText(last).replace(' UTC', '');
  if (!a || !b) return `${a || '?'} → ${b || '?'} UTC`;
  return a.slice(0, 10) === b.slice(0, 10) ? `${a} → ${b.slice(11)} UTC` : `${a} → ${b} UTC`;
}

export function naiveRange(first, last) {
  if (!first && !last) return '';
  const a = naiveText(first);
  const b = naiveText(last);
  if (!a || !b) return `${a || '?'} → ${b || '?'}`;
  return a.slice(0, 10) === b.slice(0, 10) ? `${a} → ${b.slice(11)}` : `${a} → ${b}`;
}

const STATUSES = {
  completed: { text: 'Completed', tone: 'completed' },
  error: { text: 'Failed', tone: 'error' },
  failed: { text: 'Failed', tone: 'error' },
  started: { text: 'Started', tone: 'started' },
  stalled: { text: 'Stalled', tone: 'stalled' },
};

/** A pill saying the status in words, coloured by it. */
export function pill(status, { title } = {}) {
  const key = String(status ?? '').trim().toLowerCase();
  const known = STATUSES[key];
  return h('span', {
    class: ['pill', `pill-${known ? known.tone : 'neutral'}`],
    title,
    dataset: { status: key || 'none' },
  }, known ? known.text : status || 'Unknown');
}

/** Whether an upload still `started` has waited longer than the stalled threshold. */
function isStalled(upload, stalledMinutes, now = Date.now()) {
  if (upload.status !== 'started' || !stalledMinutes) return false;
  const since = parseTime(upload.started_at || upload.first_seen_at);
  return Boolean(since) && now - since.getTime() > stalledMinutes * 60_000;
}

export function uploadPill(upload, stalledMinutes) {
  if (isStalled(upload, stalledMinutes)) {
    return pill('stalled', { title: `Started ${relativeText(upload.started_at || upload.first_seen_at)}, no completion or error since` });
  }
  return pill(upload.status);
}

const EVENTS = {
  upload: 'Upload',
  validation: 'Validation',
  raw_processing_complete: 'Raw processing',
  data_retrieval_complete: 'Data retrieval',
  daily_statistics_complete: 'Daily statistics',
  cp2_daily_statistics_complete: 'Daily statistics (CP2)',
};

export const EVENT_NAMES = EVENTS;

export function eventName(event) {
  return EVENTS[event] || event || 'Unknown';
}

const FLAGS = {
  unknown_event: 'Unknown event type',
  invalid_json: 'Body is not JSON',
  invalid_payload: 'Unexpected payload',
};

export function flagName(flag) {
  return FLAGS[flag] || flag;
}

/** The authentication outcome as a pill: verified, open (nothing configured), refused... */
export function authPill(auth, authOk) {
  const text = String(auth || '');
  let tone = 'neutral';
  let label = 'Not checked';
  if (text.startsWith('verified')) [tone, label] = ['completed', 'Verified'];
  else if (text.startsWith('open')) [tone, label] = ['stalled', 'No authentication'];
  else if (text.startsWith('none required')) [tone, label] = ['neutral', 'Not required'];
  else if (text.startsWith('refused') || authOk === false) [tone, label] = ['error', 'Did not match'];
  return h('span', { class: ['pill', `pill-${tone}`], title: text }, label);
}

export function plural(n, one, many = `${one}s`) {
  return `${count(n)} ${n === 1 ? one : many}`;
}
