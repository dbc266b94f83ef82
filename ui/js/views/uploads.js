// Uploads: one page of the filtered uploads at a time (keyset pagination on the API's
// next_cursor), filters in the URL, CSV/JSON export of the same filters.

import * as api from '../api.js';
import { changeTracker, h, replace } from '../dom.js';
import { empty, errorBox, loading, studyTitle, uploadKeys, uploadsTable } from '../components.js';
import { count, dayText, localText } from '../format.js';
import { links, pick } from '../route.js';

const FILTERS = ['study', 'subject', 'status', 'since', 'until', 'q'];
const PAGE_SIZE = 50;
const STATUS_OPTIONS = [
  ['', 'Any status'],
  ['error', 'Failed'],
  ['completed', 'Completed'],
  ['started', 'Started'],
  ['stalled', 'Stalled'],
];

/** Where each page started, so "Newer" can go back: cursor of a page -> cursor of the page before. */
const previousCursor = new Map();

const isDate = (text) => /^\d{4}-\d{2}-\d{2}$/.test(text);

/**
 * The API's parameters for the filters. "Stalled" is not a status CentrePoint sends: the
 * API's `stalled` filter keeps uploads still `started` for longer than the threshold.
 */
export function apiFilters(filters) {
  const params = { ...filters };
  if (filters.status === 'stalled') {
    params.status = '';
    params.stalled = 'true';
  }
  return params;
}

/** A since/until bound as people read it (the raw text if it is neither a date nor a time). */
function boundText(value) {
  return isDate(value) ? dayText(value) : localText(value) || value;
}

function describe(filters, ctx) {
  const parts = [];
  const status = STATUS_OPTIONS.find(([value]) => value === filters.status);
  parts.push(status && status[0] ? `${status[1]} uploads` : 'All uploads');
  if (filters.study) parts.push(`in ${studyTitle(ctx, filters.study)}`);
  if (filters.subject) parts.push(`of subject ${filters.subject}`);
  if (filters.since && filters.until) parts.push(`updated ${boundText(filters.since)} to ${boundText(filters.until)}`);
  else if (filters.since) parts.push(`updated since ${boundText(filters.since)}`);
  else if (filters.until) parts.push(`updated until ${boundText(filters.until)}`);
  if (filters.q) parts.push(`matching “${filters.q}”`);
  return `${parts.join(' ')}, most recently updated first.`;
}

function field(label, control, { wide = false } = {}) {
  return h('div', { class: ['field', wide && 'field-wide'] }, h('label', { for: control.id }, label), control);
}

function studyOptions(ctx, selected) {
  const studies = ctx.studies();
  const options = [h('option', { value: '' }, 'All studies')];
  for (const study of studies) {
    options.push(h('option', { value: study.study_id, selected: study.study_id === selected }, study.label ? `${study.label} (${study.study_id})` : study.study_id));
  }
  if (selected && !studies.some((s) => s.study_id === selected)) options.push(h('option', { value: selected, selected: true }, selected));
  return options;
}

export function mount(root, route, ctx) {
  ctx.setTitle('Uploads');
  let filters = pick(route.query, FILTERS);
  let cursor = route.query.get('cursor') || '';
  ctx.remember('uploads-hash', location.hash);

  const controls = {
    study: h('select', { id: 'filter-study', name: 'study', testid: 'filter-study' }),
    subject: h('input', { id: 'filter-subject', name: 'subject', testid: 'filter-subject', type: 'text', autocomplete: 'off', spellcheck: 'false', placeholder: 'Any' }),
    status: h('select', { id: 'filter-status', name: 'status', testid: 'filter-status' }, STATUS_OPTIONS.map(([value, text]) => h('option', { value }, text))),
    since: h('input', { id: 'filter-since', name: 'since', testid: 'filter-since', type: 'date' }),
    until: h('input', { id: 'filter-until', name: 'until', testid: 'filter-until', type: 'date' }),
    q: h('input', { id: 'filter-search', name: 'q', testid: 'filter-search', type: 'search', autocomplete: 'off', spellcheck: 'false', placeholder: 'Upload id, subject id or error text' }),
  };

  const apply = () => {
    const next = Object.fromEntries(FILTERS.map((name) => [name, controls[name].value.trim()]));
    // A time-based bound from a link (e.g. stalled) is kept unless the date field changed it.
    for (const name of ['since', 'until']) if (!next[name] && filters[name] && !isDate(filters[name]) && !controls[name].dataset.touched) next[name] = filters[name];
    ctx.navigate(links.uploads(next));
  };

  const form = h('form', {
    class: 'filters', testid: 'filter-form', role: 'search', 'aria-label': 'Filter uploads',
    onsubmit: (e) => {
      e.preventDefault();
      apply();
    },
  },
    field('Study', controls.study),
    field('Subject', controls.subject),
    field('Status', controls.status),
    field('Updated from', controls.since),
    field('to', controls.until),
    field('Search', controls.q, { wide: true }),
    h('div', { class: 'field field-buttons' },
      h('button', { type: 'submit', class: 'button button-primary', testid: 'filter-apply' }, 'Apply'),
      h('a', { href: links.uploads(), class: 'button button-quiet', testid: 'filter-clear' }, 'Clear')));
  for (const name of ['study', 'status', 'since', 'until']) {
    controls[name].addEventListener('change', () => {
      controls[name].dataset.touched = '1';
      apply();
    });
  }

  const exportCsv = h('a', { class: 'button', testid: 'export-csv', download: '' }, 'Export CSV');
  const exportJson = h('a', { class: 'button', testid: 'export-json', download: '' }, 'Export JSON');
  const subtitle = h('p', { class: 'subtitle', testid: 'uploads-description' });
  const timeBound = h('p', { class: 'note small', hidden: true });
  const results = h('div', { class: 'results' }, loading());

  replace(root, h('section', { class: 'view', testid: 'view-uploads' },
    h('header', { class: 'view-head' },
      h('div', null, h('h1', { tabindex: '-1' }, 'Uploads'), subtitle),
      h('div', { class: 'button-row', role: 'group', 'aria-label': 'Export the filtered uploads' }, exportCsv, exportJson)),
    form,
    timeBound,
    results));

  const syncForm = () => {
    replace(controls.study, studyOptions(ctx, filters.study));
    for (const name of FILTERS) {
      if (name === 'study') continue;
      const value = (name === 'since' || name === 'until') && !isDate(filters[name]) ? '' : filters[name];
      if (controls[name].value !== value) controls[name].value = value;
      delete controls[name].dataset.touched;
    }
    const bounds = ['since', 'until'].filter((name) => filters[name] && !isDate(filters[name]));
    timeBound.hidden = !bounds.length;
    replace(timeBound, bounds.length ? ['Also filtered by time: ', bounds.map((name) => `${name === 'since' ? 'from' : 'until'} ${boundText(filters[name])}`).join(', '), '. ', h('a', { href: links.uploads({ ...filters, since: isDate(filters.since) ? filters.since : '', until: isDate(filters.until) ? filters.until : '' }) }, 'Remove')] : []);
    subtitle.textContent = describe(filters, ctx);
    const exportParams = apiFilters(filters);
    exportCsv.href = api.apiUrl('/api/export', { ...exportParams, format: 'csv' });
    exportJson.href = api.apiUrl('/api/export', { ...exportParams, format: 'json' });
  };

  let seen = null;
  let generation = 0;
  let changed = changeTracker();
  const filterKey = () => JSON.stringify(filters);

  const pager = (page, where) => {
    const suffix = where === 'bottom' ? '-bottom' : '';
    const newerCursor = previousCursor.get(`${filterKey()}|${cursor}`);
    const items = [];
    if (cursor) {
      items.push(h('a', { class: 'button button-small', href: links.uploads(filters), testid: `page-newest${suffix}` }, '⇤ Newest'));
      if (newerCursor !== undefined && newerCursor !== '') items.push(h('a', { class: 'button button-small', href: links.uploads({ ...filters, cursor: newerCursor }), testid: `page-newer${suffix}` }, '← Newer'));
    }
    if (page.next_cursor) items.push(h('a', { class: 'button button-small', href: links.uploads({ ...filters, cursor: page.next_cursor }), testid: `page-older${suffix}`, rel: 'next' }, 'Older →'));
    return h('nav', { class: 'pager', 'aria-label': where === 'bottom' ? 'Pages (bottom)' : 'Pages' }, items);
  };

  const load = async ({ live = false } = {}) => {
    const mine = ++generation;
    // Dims the rows shown while other filters load (a slow query must not look like the answer).
    if (!live && results.querySelector('table')) results.setAttribute('aria-busy', 'true');
    const params = { ...apiFilters(filters), cursor, limit: PAGE_SIZE };
    let page;
    try {
      page = await api.get('/api/uploads', params, ctx.signal);
    } catch (e) {
      if (e.name === 'AbortError' || mine !== generation) return;
      results.removeAttribute('aria-busy');
      changed = changeTracker();
      replace(results, errorBox(e.message), h('p', null, h('a', { href: links.uploads() }, 'Clear the filters')));
      return;
    }
    if (mine === generation) results.removeAttribute('aria-busy');
    if (mine !== generation || !ctx.alive() || !changed(page)) return;
    if (page.next_cursor) previousCursor.set(`${filterKey()}|${page.next_cursor}`, cursor);
    const filtered = FILTERS.some((name) => filters[name]);
    if (!page.items.length) {
      seen = new Set();
      replace(results, h('div', { testid: 'uploads-empty' }, cursor
        ? empty('No older uploads', 'You reached the end of this list.', h('a', { href: links.uploads(filters) }, 'Back to the newest'))
        : filtered
          ? empty('No uploads match these filters', 'Try a wider date range or another status, or clear the filters.', h('a', { href: links.uploads() }, 'Clear the filters'))
          : empty('No uploads yet', 'Uploads appear here, live, as soon as CentrePoint sends them. If nothing arrives, check the connection steps.', h('a', { href: links.setup() }, 'Open the setup guide'))));
      return;
    }
    const info = h('p', { class: 'page-info', testid: 'page-info' },
      `${count(page.items.length)} uploads`, cursor ? ` updated before ${localText(page.items[0].updated_at)}` : '', page.next_cursor ? ' · more below' : ' · end of list');
    replace(results,
      h('div', { class: 'results-bar' }, info, pager(page, 'top')),
      uploadsTable(page.items, ctx, { showStudy: !filters.study, seen: live ? seen : null, caption: describe(filters, ctx) }),
      h('div', { class: 'results-bar results-bar-bottom' }, h('span'), pager(page, 'bottom')));
    seen = uploadKeys(page.items);
  };

  syncForm();
  load();

  return {
    refresh() {
      // A study seen for the first time joins the study filter (unless someone is choosing one).
      if (document.activeElement !== controls.study && controls.study.options.length - 1 < ctx.studies().length) {
        replace(controls.study, studyOptions(ctx, filters.study));
      }
      return load({ live: true });
    },
    update(next) {
      filters = pick(next.query, FILTERS);
      cursor = next.query.get('cursor') || '';
      ctx.remember('uploads-hash', location.hash);
      syncForm();
      seen = null;
      changed = changeTracker();
      return load();
    },
  };
}
