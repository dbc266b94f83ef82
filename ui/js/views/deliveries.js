// Deliveries: every request stored (validations, unknown event types, unreadable bodies
// included), newest first, with raw headers and body on demand; refused requests apart.

import * as api from '../api.js';
import { changeTracker, h, replace, rerender } from '../dom.js';
import { deliveryDetail, empty, errorBox, headersTable, loading, studyName } from '../components.js';
import { EVENT_NAMES, authPill, count, eventName, flagName, pill, plural, time } from '../format.js';
import { links, pick } from '../route.js';

const FILTERS = ['event', 'study', 'subject', 'since', 'until'];
const PAGE_SIZE = 50;
const TABS = [
  ['all', 'All deliveries', 'tab-all'],
  ['flagged', 'Flagged', 'tab-flagged'],
  ['refused', 'Refused requests', 'tab-refused'],
];
const TAB_HELP = {
  all: 'Every delivery stored, newest first: uploads, other events, validations, unknown event types and unreadable bodies.',
  flagged: 'Deliveries whose body could not be fully used: unknown event types, bodies that are not JSON, unexpected payloads. They are stored whole.',
  refused: 'Requests the receiver turned away (wrong credentials, not CentrePoint, too large…), and validations whose credentials did not match (answered, but not stored): the most recent first, from a bounded log.',
};

const previousCursor = new Map();
const detailCache = new Map();

function rawToggle(seq, expanded, onToggle) {
  return h('button', {
    type: 'button', class: 'button button-small', testid: 'delivery-raw-toggle',
    'aria-expanded': expanded ? 'true' : 'false', 'aria-controls': `raw-${seq}`, dataset: { focusKey: `raw-toggle-${seq}` },
    onclick: () => onToggle(seq),
  }, expanded ? 'Hide raw' : 'Raw');
}

function filterForm(filters, ctx, tab) {
  const field = (label, control) => h('div', { class: 'field' }, h('label', { for: control.id }, label), control);
  const eventSelect = h('select', { id: 'delivery-filter-event', name: 'event', testid: 'delivery-filter-event' },
    h('option', { value: '' }, 'Any event'),
    Object.entries(EVENT_NAMES).map(([value, name]) => h('option', { value, selected: value === filters.event }, name)),
    filters.event && !EVENT_NAMES[filters.event] ? h('option', { value: filters.event, selected: true }, filters.event) : null);
  const studySelect = h('select', { id: 'delivery-filter-study', name: 'study', testid: 'delivery-filter-study' },
    h('option', { value: '' }, 'All studies'),
    ctx.studies().map((s) => h('option', { value: s.study_id, selected: s.study_id === filters.study }, s.label ? `${s.label} (${s.study_id})` : s.study_id)),
    filters.study && !ctx.knowsStudy(filters.study) ? h('option', { value: filters.study, selected: true }, filters.study) : null);
  const subject = h('input', { id: 'delivery-filter-subject', name: 'subject', testid: 'delivery-filter-subject', type: 'text', value: filters.subject, placeholder: 'Any', autocomplete: 'off' });
  const since = h('input', { id: 'delivery-filter-since', name: 'since', testid: 'delivery-filter-since', type: 'date', value: filters.since });
  const until = h('input', { id: 'delivery-filter-until', name: 'until', testid: 'delivery-filter-until', type: 'date', value: filters.until });
  const controls = { event: eventSelect, study: studySelect, subject, since, until };
  const apply = () => ctx.navigate(links.deliveries({ tab: tab === 'all' ? '' : tab, ...Object.fromEntries(FILTERS.map((n) => [n, controls[n].value.trim()])) }));
  for (const name of ['event', 'study', 'since', 'until']) controls[name].addEventListener('change', apply);
  return h('form', {
    class: 'filters', testid: 'delivery-filter-form', role: 'search', 'aria-label': 'Filter deliveries',
    onsubmit: (e) => {
      e.preventDefault();
      apply();
    },
  },
    field('Event', eventSelect), field('Study', studySelect), field('Subject', subject), field('Received from', since), field('to', until),
    h('div', { class: 'field field-buttons' },
      h('button', { type: 'submit', class: 'button button-primary' }, 'Apply'),
      h('a', { class: 'button button-quiet', href: links.deliveries({ tab: tab === 'all' ? '' : tab }) }, 'Clear')));
}

function deliveryRows(items, ctx, expanded, toggle) {
  return items.flatMap((d) => {
    const open = expanded.has(d.seq);
    const row = h('tr', { testid: 'delivery-row', class: [d.flag && 'row-flagged'], dataset: { seq: d.seq, event: d.event } },
      h('td', { class: 'num' }, h('a', { href: links.delivery(d.seq) }, `#${d.seq}`)),
      h('td', { class: 'nowrap' }, time(d.received_at, { short: true })),
      h('td', { class: 'event' }, h('span', { class: 'event-name' }, eventName(d.event)), d.status ? [' ', pill(d.status)] : null),
      h('td', null, d.study_id ? studyName(ctx, d.study_id) : h('span', { class: 'muted' }, '—'),
        d.subject_id ? h('span', { class: 'muted small' }, ' · ', h('a', { href: links.subject(d.study_id, d.subject_id) }, d.subject_id)) : null),
      h('td', { class: 'message' },
        d.upload_id && d.study_id ? h('a', { href: links.upload(d.study_id, d.upload_id), class: 'clip', title: d.summary }, d.summary) : h('span', { class: 'clip', title: d.summary }, d.summary),
        d.flag ? h('span', { class: 'pill pill-stalled', title: d.problem || '' }, flagName(d.flag)) : null,
        d.duplicates ? h('span', { class: 'pill pill-neutral', title: 'Retries of this delivery, stored once' }, `+${count(d.duplicates)} retries`) : null),
      h('td', null, authPill(d.auth)),
      h('td', null, rawToggle(d.seq, open, toggle)));
    if (!open) return [row];
    const cached = detailCache.get(d.seq);
    return [row, h('tr', { class: 'raw-row', id: `raw-${d.seq}`, testid: 'delivery-raw' },
      h('td', { colspan: '7' }, cached ? deliveryDetail(cached) : loading('Loading raw content…')))];
  });
}

function refusedRows(items, expanded, toggle) {
  return items.flatMap((r) => {
    const key = `r${r.id}`;
    const open = expanded.has(key);
    const row = h('tr', { testid: 'refused-row', dataset: { id: r.id } },
      h('td', { class: 'nowrap' }, time(r.received_at, { short: true })),
      h('td', null, r.peer || '—'),
      h('td', { class: 'nowrap' }, h('code', null, `${r.method} ${r.path}`)),
      h('td', null, r.status < 300
        ? h('span', { class: 'pill pill-stalled', title: 'Answered (a validation handshake) but not stored: its credentials did not match' }, `${r.status} answered`)
        : h('span', { class: 'pill pill-error' }, `${r.status} refused`)),
      h('td', { class: 'message' }, h('span', { class: 'clip', title: r.reason }, r.reason)),
      h('td', null, r.webhook_id || '—'),
      h('td', null, r.event ? eventName(r.event) : '—'),
      h('td', null, rawToggle(key, open, toggle)));
    if (!open) return [row];
    return [row, h('tr', { class: 'raw-row', id: `raw-${key}`, testid: 'delivery-raw' }, h('td', { colspan: '8' },
      h('div', { class: 'raw-grid' },
        h('section', { class: 'raw-part' }, h('h4', null, 'Headers'), headersTable(r.headers)),
        h('section', { class: 'raw-part' }, h('h4', null, r.body_len ? `Body (first part of ${count(r.body_len)} bytes)` : 'Body'),
          r.body_prefix ? h('pre', { class: 'code', testid: 'delivery-body' }, r.body_prefix) : h('p', { class: 'muted' }, 'No body kept.')))))];
  });
}

export function mountList(root, route, ctx) {
  ctx.setTitle('Deliveries');
  let tab = route.query.get('tab') || 'all';
  let filters = pick(route.query, FILTERS);
  let cursor = route.query.get('cursor') || '';
  let limit = Number(route.query.get('limit')) || 100;
  const expanded = new Set();
  let generation = 0;
  let last = null;
  let changed = changeTracker();

  const tabs = h('nav', { class: 'tabs', 'aria-label': 'Kinds of deliveries' });
  const help = h('p', { class: 'subtitle' });
  const formSlot = h('div');
  const results = h('div', { class: 'results' }, loading());
  replace(root, h('section', { class: 'view', testid: 'view-deliveries' },
    h('header', { class: 'view-head' }, h('div', null, h('h1', { tabindex: '-1' }, 'Deliveries'), help)),
    tabs, formSlot, results));

  const draw = () => {
    if (!last) return;
    if (tab === 'refused') {
      const items = last.items;
      rerender(results, () => (items.length
        ? [h('div', { class: 'table-wrap' }, h('table', { class: 'table', testid: 'refused-table' },
          h('thead', null, h('tr', null, ['Received', 'From', 'Request', 'Answer', 'Reason', 'Webhook', 'Event', ''].map((n) => h('th', { scope: 'col' }, n)))),
          h('tbody', null, refusedRows(items, expanded, toggle)))),
        items.length >= limit && limit < 500 ? h('p', null, h('a', { class: 'button button-small', href: links.deliveries({ tab: 'refused', limit: Math.min(500, limit * 2) }) }, 'Show more')) : null]
        : empty('No refused requests', 'Requests that fail authentication or are not CentrePoint deliveries are listed here.')));
      return;
    }
    const page = last;
    const key = JSON.stringify([tab, filters]);
    const newer = previousCursor.get(`${key}|${cursor}`);
    const pagerItems = [];
    if (cursor) {
      pagerItems.push(h('a', { class: 'button button-small', testid: 'deliveries-newest', href: links.deliveries({ tab: tab === 'all' ? '' : tab, ...filters }) }, '⇤ Newest'));
      if (newer) pagerItems.push(h('a', { class: 'button button-small', href: links.deliveries({ tab: tab === 'all' ? '' : tab, ...filters, cursor: newer }) }, '← Newer'));
    }
    if (page.next_cursor) pagerItems.push(h('a', { class: 'button button-small', testid: 'deliveries-older', href: links.deliveries({ tab: tab === 'all' ? '' : tab, ...filters, cursor: page.next_cursor }) }, 'Older →'));
    const filtered = FILTERS.some((n) => filters[n]);
    rerender(results, () => (page.items.length
      ? [h('div', { class: 'results-bar' }, h('p', { class: 'page-info' }, `${plural(page.items.length, 'delivery', 'deliveries')}`, cursor ? ` before #${cursor}` : ', newest first'), h('nav', { class: 'pager', 'aria-label': 'Pages' }, pagerItems)),
        h('div', { class: 'table-wrap' }, h('table', { class: 'table deliveries', testid: 'deliveries-table' },
          h('thead', null, h('tr', null, ['#', 'Received', 'Event', 'Study · subject', 'Summary', 'Authentication', ''].map((n) => h('th', { scope: 'col' }, n)))),
          h('tbody', null, deliveryRows(page.items, ctx, expanded, toggle)))),
        h('div', { class: 'results-bar results-bar-bottom' }, h('span'), h('nav', { class: 'pager', 'aria-label': 'Pages (bottom)' }, pagerItems.map((a) => a.cloneNode(true))))]
      : filtered || tab !== 'all'
        ? empty(tab === 'flagged' ? 'Nothing flagged' : 'No deliveries match these filters', filtered ? 'Try a wider date range or clear the filters.' : 'Good: everything received could be read and verified.', filtered ? h('a', { href: links.deliveries({ tab: tab === 'all' ? '' : tab }) }, 'Clear the filters') : null)
        : empty('No deliveries yet', 'Everything CentrePoint sends shows up here, including validation handshakes.', h('a', { href: links.setup() }, 'Open the setup guide'))));
    for (const a of results.querySelectorAll('.results-bar-bottom [data-testid]')) a.dataset.testid += '-bottom';
  };

  async function toggle(seq) {
    if (expanded.has(seq)) expanded.delete(seq);
    else expanded.add(seq);
    draw();
    if (typeof seq === 'number' && expanded.has(seq) && !detailCache.has(seq)) {
      try {
        detailCache.set(seq, await api.get(api.path('deliveries', seq), null, ctx.signal));
      } catch (e) {
        if (e.name === 'AbortError') return;
        const cell = results.querySelector(`#raw-${seq} td`);
        if (cell) replace(cell, errorBox(`Could not load delivery #${seq}: ${e.message}`));
        return;
      }
      if (ctx.alive()) draw();
    }
  }

  const sync = () => {
    replace(tabs, TABS.map(([value, label, testid]) => h('a', {
      href: links.deliveries({ tab: value === 'all' ? '' : value, ...(value === 'refused' ? {} : filters) }),
      class: 'tab', testid, 'aria-current': value === tab ? 'page' : null,
    }, label)));
    help.textContent = TAB_HELP[tab] || TAB_HELP.all;
    replace(formSlot, tab === 'refused' ? null : filterForm(filters, ctx, tab));
    formSlot.hidden = tab === 'refused';
  };

  const load = async ({ live = false } = {}) => {
    const mine = ++generation;
    if (!live && results.querySelector('table')) results.setAttribute('aria-busy', 'true');
    let data;
    try {
      data = tab === 'refused'
        ? { items: await api.get('/api/refused', { limit }, ctx.signal) }
        : await api.get('/api/deliveries', {
          ...filters, cursor, limit: PAGE_SIZE, flagged: tab === 'flagged' ? 'true' : '',
        }, ctx.signal);
    } catch (e) {
      if (e.name !== 'AbortError' && mine === generation) {
        changed = changeTracker();
        results.removeAttribute('aria-busy');
      }
      if (e.name !== 'AbortError' && mine === generation) replace(results, errorBox(e.message), h('p', null, h('a', { href: links.deliveries() }, 'Clear the filters')));
      return;
    }
    if (mine === generation) results.removeAttribute('aria-busy');
    if (mine !== generation || !ctx.alive() || !changed(data)) return;
    if (data.next_cursor) previousCursor.set(`${JSON.stringify([tab, filters])}|${data.next_cursor}`, cursor);
    last = data;
    draw();
  };

  sync();
  load();
  return {
    refresh: () => load({ live: true }),
    update(next) {
      tab = next.query.get('tab') || 'all';
      filters = pick(next.query, FILTERS);
      cursor = next.query.get('cursor') || '';
      limit = Number(next.query.get('limit')) || 100;
      last = null;
      changed = changeTracker();
      sync();
      return load();
    },
  };
}

export function mountOne(root, route, ctx, seqText) {
  ctx.setTitle(`Delivery #${seqText}`);
  replace(root, h('section', { class: 'view', testid: 'view-delivery' }, loading()));
  const load = async () => {
    let d;
    try {
      d = await api.get(api.path('deliveries', seqText), null, ctx.signal);
    } catch (e) {
      if (e.name !== 'AbortError') {
        replace(root, h('section', { class: 'view', testid: 'view-delivery' },
          h('a', { class: 'back', href: links.deliveries() }, '← Deliveries'),
          h('h1', { tabindex: '-1' }, `Delivery #${seqText}`), errorBox(e.message)));
      }
      return;
    }
    if (!ctx.alive()) return;
    rerender(root, () => h('section', { class: 'view', testid: 'view-delivery' },
      h('a', { class: 'back', href: links.deliveries() }, '← Deliveries'),
      h('header', { class: 'view-head' },
        h('div', null,
          h('h1', { tabindex: '-1' }, `Delivery #${d.seq} `, d.status ? pill(d.status) : null),
          h('p', { class: 'subtitle' }, d.summary))),
      d.upload_id && d.study_id ? h('p', null, h('a', { href: links.upload(d.study_id, d.upload_id) }, `Upload ${d.upload_id}`), ' · ',
        d.subject_id ? h('a', { href: links.subject(d.study_id, d.subject_id) }, `Subject ${d.subject_id}`) : null) : null,
      !d.upload_id && d.subject_id && d.study_id ? h('p', null, h('a', { href: links.subject(d.study_id, d.subject_id) }, `Subject ${d.subject_id}`)) : null,
      h('section', { class: 'panel' }, deliveryDetail(d))));
  };
  load();
  return {};
}
