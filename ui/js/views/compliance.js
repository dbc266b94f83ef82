// Compliance: per study, who is silent and whose days count. Subjects as rows (silent
// first, as the API orders them), the last 14 or 28 complete days as columns, each cell
// the day's wear hours against the study's valid-day threshold. The day range and the
// filter live in the address (`?days=28&filter=silent`); the CSV export holds exactly
// the rows and columns of that view.
//
// Built for thousands of subjects: rows are made with createElement and textContent
// only, a page of them at a time, and a live refresh waits for deliveries to settle.

import * as api from '../api.js';
import { changeTracker, h, replace } from '../dom.js';
import { empty, errorBox, loading, studyTitle } from '../components.js';
import { count, dayText, plural, time } from '../format.js';
import { links } from '../route.js';

const RANGES = [14, 28];
const DEFAULT_RANGE = 14;
const FILTERS = [
  ['all', 'All'],
  ['silent', 'Silent'],
  ['below', 'Below target'],
];
/** Rows drawn at first, and added by each "Show more". */
const PAGE_ROWS = 500;
/** A burst of deliveries makes one refresh, once it has been quiet this long... */
const SETTLE_MS = 800;
/** ...or this long after the first of them at the latest. */
const MAX_WAIT_MS = 4000;

const WEEK = {
  compliant: 'Compliant',
  on_track: 'On track',
  below_target: 'Below target',
  not_expected: 'Not expected',
};

const pad = (n) => String(n).padStart(2, '0');
const isoDay = (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;

/** The `n` complete days (yesterday and before) as `YYYY-MM-DD`, oldest first. */
function lastDays(n, now = new Date()) {
  const days = [];
  for (let back = n; back >= 1; back -= 1) days.push(isoDay(new Date(now.getFullYear(), now.getMonth(), now.getDate() - back)));
  return days;
}

function routeState(query) {
  const days = Number(query.get('days'));
  const filter = query.get('filter');
  return {
    days: RANGES.includes(days) ? days : DEFAULT_RANGE,
    filter: FILTERS.some(([key]) => key === filter) ? filter : 'all',
  };
}

/** Wear minutes as hours with one decimal, rounded down so 599 min never reads as 10.0. */
export function hoursText(minutes) {
  return (Math.floor(minutes / 6) / 10).toFixed(1);
}

const thresholdText = (minutes) => `${hoursText(minutes)} h`;

/** Why a day is not expected, or null when the protocol and the enrolment expect it. */
function notExpected(protocol, subject, day) {
  if ((protocol.monitoring_from && day < protocol.monitoring_from) || (protocol.monitoring_until && day > protocol.monitoring_until)) return 'outside monitoring';
  if ((subject.enrolled_on && day < subject.enrolled_on) || (subject.expected_until && day > subject.expected_until)) return 'outside enrolment';
  return null;
}

/**
 * One subject-day as shown: its state (valid, below, none, off), the visible text, the
 * words a screen reader adds, and the tooltip.
 */
/** `Thu, Nov 26` per day, formatted once per column rather than once per cell. */
const longDays = new Map();
function longDay(day) {
  let text = longDays.get(day);
  if (text === undefined) {
    text = dayText(day, { long: true });
    longDays.set(day, text);
  }
  return text;
}

function dayCell(protocol, subject, day, entry) {
  const wear = entry && entry.wear_minutes !== null && entry.wear_minutes !== undefined ? entry.wear_minutes : null;
  const uploads = entry ? entry.uploads : 0;
  const uploadsText = uploads ? ` · ${uploads} upload${uploads === 1 ? '' : 's'}` : '';
  const off = notExpected(protocol, subject, day);
  const date = longDay(day);
  if (off) {
    return {
      state: 'off',
      text: '',
      spoken: 'not expected',
      title: `${date}: not expected (${off})${wear === null ? '' : `; ${hoursText(wear)} h of wear`}${uploadsText}`,
      csv: 'not expected',
    };
  }
  if (wear === null) return { state: 'none', text: '', spoken: 'no data', title: `${date}: no data${uploadsText}`, csv: '' };
  const valid = entry.valid;
  const hours = hoursText(wear);
  return {
    state: valid ? 'valid' : 'below',
    text: hours,
    spoken: valid ? ' h, valid' : ' h, below threshold',
    title: `${date}: ${hours} h of wear (${Math.round(wear)} min), ${valid ? 'a valid day' : `below the ${thresholdText(protocol.valid_day_minutes)} threshold`}${uploadsText}`,
    csv: hours,
  };
}

function matches(subject, filter) {
  if (filter === 'silent') return subject.silent;
  if (filter === 'below') return subject.week === 'below_target';
  return true;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null && text !== '') node.textContent = String(text);
  return node;
}

function weekText(subject, protocol) {
  const name = WEEK[subject.week] || subject.week;
  return subject.week === 'not_expected' ? name : `${name} (${subject.week_valid_days} of ${protocol.valid_days_per_week})`;
}

function daysSinceText(subject) {
  if (subject.days_since_upload === null || subject.days_since_upload === undefined) return '';
  return plural(subject.days_since_upload, 'day');
}

/** One subject's row, built without markup: every value is a text node. */
function subjectRow(study, subject, columns, protocol, hasRoster) {
  const tr = el('tr', ['compliance-row', subject.silent && 'row-silent', subject.week === 'below_target' && 'row-below'].filter(Boolean).join(' '));
  tr.dataset.testid = 'compliance-row';
  tr.dataset.subject = subject.subject_id;

  const name = el('th', 'subject-cell');
  name.scope = 'row';
  const link = el('a', null, subject.subject_id);
  link.href = links.subject(study, subject.subject_id);
  link.dataset.testid = 'subject-link';
  link.dataset.focusKey = `compliance-subject-${subject.subject_id}`;
  name.append(link);
  if (subject.label) {
    const label = el('span', 'subject-label', subject.label);
    label.dataset.testid = 'subject-label';
    name.append(' ', label);
  }
  if (!subject.seen) {
    const mark = el('span', 'mark mark-unseen', 'not yet seen');
    mark.dataset.testid = 'mark-unseen';
    mark.title = 'On the roster, but no delivery has named this subject yet';
    name.append(' ', mark);
  }
  if (hasRoster && !subject.on_roster) {
    const mark = el('span', 'mark mark-unlisted', 'not on roster');
    mark.dataset.testid = 'mark-unlisted';
    mark.title = 'Deliveries name this subject, but the study\'s roster does not';
    name.append(' ', mark);
  }
  tr.append(name);

  const last = el('td', 'nowrap');
  last.append(time(subject.last_upload_at, { short: true, empty: 'never' }));
  tr.append(last);

  const since = el('td', 'nowrap num', daysSinceText(subject));
  if (subject.silent) {
    const silent = el('span', 'pill pill-error', 'Silent');
    silent.title = subject.silent_since ? `No upload since ${new Date(subject.silent_since).toLocaleString()}` : 'No upload';
    since.append(' ', silent);
  }
  tr.append(since);
  tr.append(el('td', 'num', String(subject.valid_days_last_7)));
  tr.append(el('td', 'num', String(subject.valid_days_last_28)));
  tr.append(el('td', `nowrap week week-${subject.week}`, weekText(subject, protocol)));

  const byDay = new Map((subject.days || []).map((d) => [d.day, d]));
  for (const day of columns) {
    const cell = dayCell(protocol, subject, day, byDay.get(day));
    const td = el('td', `day day-${cell.state}`, cell.text);
    td.dataset.day = day;
    td.title = cell.title;
    td.append(el('span', 'sr-only', cell.spoken));
    tr.append(td);
  }
  return tr;
}

/**
 * Column widths (px): the table is laid out from them alone (`table-layout: fixed`), so
 * thousands of rows never make the browser measure every cell.
 */
const WIDTHS = [200, 128, 118, 72, 78, 150];
const DAY_WIDTH = 38;

function colgroup(columns) {
  const group = document.createElement('colgroup');
  for (const width of [...WIDTHS, ...columns.map(() => DAY_WIDTH)]) {
    const col = document.createElement('col');
    col.style.width = `${width}px`;
    group.append(col);
  }
  return group;
}

function headRow(columns, protocol) {
  const tr = el('tr');
  const names = [['Subject', ''], ['Last upload', ''], ['Days since', 'num'], ['Valid, 7 d', 'num'], ['Valid, 28 d', 'num'], ['This week', '']];
  for (const [text, cls] of names) {
    const th = el('th', cls, text);
    th.scope = 'col';
    tr.append(th);
  }
  for (const day of columns) {
    const [y, m, d] = day.split('-').map(Number);
    const date = new Date(y, m - 1, d);
    const weekend = date.getDay() === 0 || date.getDay() === 6;
    const th = el('th', ['day-head', weekend && 'weekend'].filter(Boolean).join(' '));
    th.scope = 'col';
    th.title = dayText(day, { long: true });
    th.append(el('span', 'day-weekday', date.toLocaleDateString(undefined, { weekday: 'narrow' })), el('span', 'day-number', String(d)), el('span', 'sr-only', ` ${dayText(day, { long: true })}`));
    tr.append(th);
  }
  tr.firstChild.title = `A valid day has at least ${thresholdText(protocol.valid_day_minutes)} of wear`;
  return tr;
}

/** CSV text of exactly what is shown: the filtered subjects and the day columns. */
export function csvText(study, subjects, columns, protocol) {
  const field = (value) => {
    let text = value === null || value === undefined ? '' : String(value);
    // A spreadsheet must never run a cell as a formula (as cpwatch's other exports).
    if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`;
    return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  };
  const lines = [['study_id', 'subject_id', 'label', 'on_roster', 'seen', 'silent', 'last_upload_at', 'days_since_upload', 'valid_days_last_7', 'valid_days_last_28', 'week', 'week_valid_days', ...columns].map(field).join(',')];
  for (const s of subjects) {
    const byDay = new Map((s.days || []).map((d) => [d.day, d]));
    lines.push([
      study, s.subject_id, s.label, s.on_roster, s.seen, s.silent, s.last_upload_at, s.days_since_upload,
      s.valid_days_last_7, s.valid_days_last_28, s.week, s.week_valid_days,
      ...columns.map((day) => dayCell(protocol, s, day, byDay.get(day)).csv),
    ].map(field).join(','));
  }
  return `${lines.join('\r\n')}\r\n`;
}

function download(name, text) {
  const url = URL.createObjectURL(new Blob([text], { type: 'text/csv;charset=utf-8' }));
  const a = h('a', { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

function legend(protocol) {
  const item = (state, text) => h('li', null, h('span', { class: `swatch day day-${state}`, 'aria-hidden': 'true' }), text);
  return h('ul', { class: 'legend', testid: 'compliance-legend', 'aria-label': 'Legend' },
    item('valid', `Valid day: at least ${thresholdText(protocol.valid_day_minutes)} of wear (hours shown)`),
    item('below', 'Below the threshold'),
    item('none', 'No data'),
    item('off', 'Not expected (outside monitoring or enrolment)'));
}

function protocolText(protocol) {
  const parts = [`a valid day has ${thresholdText(protocol.valid_day_minutes)} of wear`, `${protocol.valid_days_per_week} valid days a week${protocol.weekend_day_required ? ', one of them a weekend day' : ''}`, `silent after ${plural(protocol.silent_after_days, 'day')} without an upload`];
  if (protocol.monitoring_from && protocol.monitoring_until) parts.push(`monitoring ${protocol.monitoring_from} to ${protocol.monitoring_until}`);
  else if (protocol.monitoring_from) parts.push(`monitoring from ${protocol.monitoring_from}`);
  else if (protocol.monitoring_until) parts.push(`monitoring until ${protocol.monitoring_until}`);
  return parts.join(' · ');
}

/** `#/compliance` without a study: the most recently active one. */
export function mountChooser(root, route, ctx) {
  ctx.setTitle('Compliance');
  replace(root, h('section', { class: 'view', testid: 'view-compliance' }, loading()));
  (async () => {
    const studies = ctx.studies().length ? ctx.studies() : await ctx.reloadStudies();
    if (!ctx.alive()) return;
    const byRecent = [...studies].sort((a, b) => String(b.last_delivery_at || '').localeCompare(String(a.last_delivery_at || '')));
    if (byRecent.length) {
      location.replace(links.compliance(byRecent[0].study_id, Object.fromEntries(route.query)));
      return;
    }
    replace(root, h('section', { class: 'view', testid: 'view-compliance' },
      h('h1', { tabindex: '-1' }, 'Compliance'),
      empty('No studies yet', 'A study\'s compliance appears once CentrePoint sends its daily statistics, or once you import its roster in Settings.',
        h('a', { href: links.settings('compliance') }, 'Import a roster'))));
  })();
  return {};
}

export function mount(root, route, ctx, study) {
  let state = routeState(route.query);
  ctx.setTitle(`Compliance · ${studyTitle(ctx, study)}`);
  const picker = h('select', { id: 'compliance-study', testid: 'compliance-study', onchange: (e) => ctx.navigate(links.compliance(e.target.value, state)) });
  const subtitle = h('p', { class: 'subtitle' });
  const heading = h('h1', { tabindex: '-1' }, 'Compliance');
  const controls = h('div', { class: 'compliance-controls' });
  const counts = h('p', { class: 'compliance-counts', testid: 'compliance-counts', 'aria-live': 'polite' });
  const legendSlot = h('div');
  const body = h('div', { class: 'results' }, loading());
  replace(root, h('section', { class: 'view view-wide', testid: 'view-compliance' },
    h('header', { class: 'view-head' },
      h('div', null, heading, subtitle),
      h('div', { class: 'field field-inline' }, h('label', { for: 'compliance-study' }, 'Study'), picker)),
    controls, counts, legendSlot, body));

  let data = null;
  let columns = [];
  let shownRows = PAGE_ROWS;
  let generation = 0;
  const changed = changeTracker();

  const fillPicker = () => {
    if (document.activeElement === picker) return;
    const studies = ctx.studies();
    const options = studies.map((s) => h('option', { value: s.study_id, selected: s.study_id === study }, s.label ? `${s.label} (${s.study_id})` : s.study_id));
    if (!studies.some((s) => s.study_id === study)) options.push(h('option', { value: study, selected: true }, study));
    replace(picker, options);
  };

  const drawControls = () => {
    const choice = (testid, href, text, current) => h('a', { class: ['segment', current && 'is-current'], href, testid, 'aria-current': current ? 'true' : null }, text);
    replace(controls,
      h('div', { class: 'segments', role: 'group', 'aria-label': 'Days shown' },
        RANGES.map((n) => choice(`compliance-range-${n}`, links.compliance(study, { ...state, days: n }), `${n} days`, state.days === n))),
      h('div', { class: 'segments', role: 'group', 'aria-label': 'Subjects shown' },
        FILTERS.map(([key, text]) => choice(`compliance-filter-${key}`, links.compliance(study, { ...state, filter: key }), text, state.filter === key))),
      h('button', { type: 'button', class: 'button', testid: 'compliance-csv', disabled: !data, onclick: exportCsv }, 'Export CSV'));
  };

  const visible = () => (data ? data.subjects.filter((s) => matches(s, state.filter)) : []);

  function exportCsv() {
    if (!data) return;
    const today = isoDay(new Date());
    const safe = String(study).replace(/[^A-Za-z0-9_-]/g, '').slice(0, 40);
    download(`cpwatch-compliance-${safe}-${state.filter}-${state.days}d-${today}.csv`, csvText(study, visible(), columns, data.protocol));
  }

  const draw = () => {
    const hasRoster = data.subjects.some((s) => s.on_roster);
    const name = studyTitle(ctx, study);
    heading.textContent = `Compliance · ${name}`;
    ctx.setTitle(`Compliance · ${name}`);
    subtitle.textContent = `The last ${columns.length} complete days (${dayText(columns[0])} to ${dayText(columns[columns.length - 1])}): ${protocolText(data.protocol)}.`;
    replace(counts,
      h('span', { class: data.silent ? 'count-error' : null, testid: 'count-silent' }, `${count(data.silent)} silent`), ' · ',
      h('span', { class: data.below_target ? 'count-warn' : null, testid: 'count-below' }, `${count(data.below_target)} below target`), ' · ',
      h('span', { testid: 'count-subjects' }, plural(data.subjects.length, 'subject')),
      ' · ', h('a', { href: links.settings('compliance') }, 'Protocol and roster'));
    replace(legendSlot, legend(data.protocol));
    drawControls();

    const rows = visible();
    if (!data.subjects.length) {
      replace(body, h('div', { testid: 'compliance-empty' }, empty('No subjects in this study yet', 'Subjects appear with their first delivery, or when you import the study\'s roster.', h('a', { href: links.settings('compliance') }, 'Import a roster'))));
      return;
    }
    if (!rows.length) {
      replace(body, h('div', { testid: 'compliance-empty' }, empty(state.filter === 'silent' ? 'No silent subjects' : 'No subjects below target', 'Every subject of this study is keeping up.', h('a', { href: links.compliance(study, { ...state, filter: 'all' }) }, 'Show all subjects'))));
      return;
    }
    const active = document.activeElement;
    const focusKey = active && body.contains(active) ? active.dataset.focusKey : null;
    const oldWrap = body.querySelector('.compliance-wrap');
    const scrolled = oldWrap ? { left: oldWrap.scrollLeft, atEnd: oldWrap.scrollLeft + oldWrap.clientWidth >= oldWrap.scrollWidth - 2 } : { atEnd: true };
    const tbody = document.createElement('tbody');
    const addRows = (from, to) => {
      const fragment = document.createDocumentFragment();
      for (const subject of rows.slice(from, to)) fragment.append(subjectRow(study, subject, columns, data.protocol, hasRoster));
      tbody.append(fragment);
    };
    addRows(0, shownRows);
    const table = h('table', { class: 'table compliance', testid: 'compliance-table' },
      h('caption', { class: 'sr-only' }, `Wear hours per day for ${plural(rows.length, 'subject')} of ${name}`),
      colgroup(columns),
      h('thead', null, headRow(columns, data.protocol)));
    table.style.width = `${WIDTHS.reduce((a, b) => a + b, 0) + DAY_WIDTH * columns.length}px`;
    table.append(tbody);
    const moreText = h('span');
    const moreButton = h('button', { type: 'button', class: 'button button-small', testid: 'compliance-more' });
    const more = h('p', { class: 'note' }, moreText, ' ', moreButton);
    const sayMore = () => {
      more.hidden = rows.length <= shownRows;
      moreText.textContent = `Showing ${count(shownRows)} of ${plural(rows.length, 'subject')} (the export has them all).`;
      moreButton.textContent = `Show ${count(Math.min(PAGE_ROWS, rows.length - shownRows))} more`;
    };
    // More rows are added to the table as it is: the rows drawn stay as they are.
    moreButton.addEventListener('click', () => {
      addRows(shownRows, shownRows + PAGE_ROWS);
      shownRows += PAGE_ROWS;
      sayMore();
    });
    sayMore();
    const wrap = h('div', { class: 'table-wrap compliance-wrap' }, table);
    replace(body, wrap, more);
    // The most recent days are at the right: shown first, and kept in view across refreshes.
    wrap.scrollLeft = scrolled.atEnd ? wrap.scrollWidth : scrolled.left;
    if (focusKey) {
      const again = body.querySelector(`[data-focus-key="${CSS.escape(focusKey)}"]`);
      if (again) again.focus({ preventScroll: true });
    }
  };

  const load = async ({ live = false } = {}) => {
    const mine = ++generation;
    if (!ctx.studies().length) await ctx.reloadStudies();
    if (mine !== generation || !ctx.alive()) return;
    fillPicker();
    const wanted = lastDays(state.days);
    let answer;
    if (!live && data) body.setAttribute('aria-busy', 'true');
    try {
      answer = await api.get(api.path('studies', study, 'compliance'), { from: wanted[0], to: wanted[wanted.length - 1] }, ctx.signal);
    } catch (e) {
      if (e.name !== 'AbortError' && mine === generation) {
        body.removeAttribute('aria-busy');
        if (!live || !data) replace(body, errorBox(e.message));
      }
      return;
    }
    if (mine !== generation || !ctx.alive()) return;
    body.removeAttribute('aria-busy');
    if (!changed({ answer, state }) && data) return;
    data = answer;
    columns = wanted;
    draw();
  };

  let settleTimer = null;
  let firstWaiting = 0;
  const liveRefresh = () => {
    const now = Date.now();
    if (!settleTimer) firstWaiting = now;
    clearTimeout(settleTimer);
    const wait = Math.max(0, Math.min(SETTLE_MS, firstWaiting + MAX_WAIT_MS - now));
    settleTimer = setTimeout(() => {
      settleTimer = null;
      load({ live: true });
    }, wait);
  };
  ctx.signal.addEventListener('abort', () => clearTimeout(settleTimer));

  drawControls();
  load();
  return {
    refresh(changes) {
      // Only this study's deliveries (or a reconnect) can change what is shown.
      if (!changes || changes.all || changes.studies.has(String(study))) liveRefresh();
    },
    update(next) {
      const before = state;
      state = routeState(next.query);
      if (before.filter !== state.filter) shownRows = PAGE_ROWS;
      drawControls();
      if (before.days !== state.days) return load();
      if (data) draw();
      return undefined;
    },
  };
}
