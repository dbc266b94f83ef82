// cpwatch dashboard: hash router, shared caches, live stream.
//
// Stable hooks for browser tests (data-testid unless noted; ids are also set where a
// label needs them):
//   shell        app-version (the footer: version and commit), nav-overview nav-uploads nav-subjects nav-compliance nav-deliveries nav-settings (also ids),
//                live-indicator (data-state = connecting | connected | reconnecting), view (#view),
//                view-<name> on each view's root: view-overview view-first-run view-uploads
//                view-upload-detail view-subjects view-subject view-compliance view-deliveries view-delivery
//                view-settings view-not-found; empty-state, error
//   overview     receiver-health auth-off-warning refused-count last-delivery study-card
//                (data-study) study-chart latest-failures stalled-uploads setup-link
//                compliance-link
//   first run    first-run first-run-step tunnel-commands target-url test-delivery-button
//                test-delivery-failed-button test-delivery-result
//   uploads      filter-form filter-study filter-subject filter-status filter-since
//                filter-until filter-search filter-apply filter-clear uploads-table
//                upload-row (data-study data-upload data-status) upload-link page-newest
//                page-newer page-older page-info export-csv export-json uploads-empty
//   upload       upload-summary upload-status upload-error upload-epochs upload-timeline
//                timeline-delivery (data-seq) delivery-detail delivery-auth delivery-headers
//                delivery-body back-to-uploads
//   subjects     subjects-study subjects-table subject-row (data-subject) subject-link
//                subjects-compliance-link; subject page: subject-uploads subject-events
//                subject-event subject-all-uploads subject-wear subject-wear-table
//                wear-row (data-day; cells day-valid | day-below | day-none)
//   compliance   (#/compliance/{study}?days=14|28&filter=all|silent|below) compliance-study
//                compliance-counts count-silent count-below count-subjects
//                compliance-range-14 compliance-range-28 compliance-filter-all
//                compliance-filter-silent compliance-filter-below compliance-legend
//                compliance-table compliance-row (data-subject; classes row-silent
//                row-below) subject-link subject-label mark-unseen mark-unlisted
//                day cells td[data-day] (class day + day-valid | day-below | day-none
//                | day-off) compliance-csv compliance-more compliance-empty
//   deliveries   tab-all tab-flagged tab-refused delivery-filter-form
//                delivery-filter-event delivery-filter-study delivery-filter-subject
//                delivery-filter-since delivery-filter-until deliveries-table delivery-row
//                (data-seq) delivery-raw-toggle delivery-raw refused-table refused-row
//                deliveries-older deliveries-newest
//   settings     receiver-settings webhooks-table webhook-row (data-webhook) webhook-edit
//                webhook-remove webhook-form webhook-id webhook-label webhook-mode
//                webhook-user webhook-secret webhook-save webhook-cancel webhook-result
//                study-names study-name-input (data-study) study-name-save
//                study-name-result new-study-id new-study-name new-study-save
//                prefs-form pref-public-url pref-retention pref-stalled
//                pref-notify-completed pref-notify-failed pref-notify-started
//                pref-notify-other pref-group-window pref-quiet-start pref-quiet-end
//                pref-notify-silent pref-notify-below-target pref-digest-on pref-digest-at
//                pref-muted (data-study) prefs-save prefs-result
//                compliance-settings protocol-study protocol-valid-day-minutes
//                protocol-valid-days-per-week protocol-weekend protocol-silent-after
//                protocol-monitoring-from protocol-monitoring-until protocol-save
//                protocol-result roster-file roster-upload roster-result roster-problems
//                roster-problem (data-line) roster-summary

import * as api from './js/api.js';
import { h, replace } from './js/dom.js';
import { refreshRelativeTimes } from './js/format.js';
import { parseHash } from './js/route.js';
import * as overview from './js/views/overview.js';
import * as firstRun from './js/views/firstrun.js';
import * as uploads from './js/views/uploads.js';
import * as upload from './js/views/upload.js';
import * as subjects from './js/views/subjects.js';
import * as compliance from './js/views/compliance.js';
import * as deliveries from './js/views/deliveries.js';
import * as settings from './js/views/settings.js';

const REFRESH_EVERY_MS = 500;

/** Which view a route shows, and which nav entry it belongs to. */
function resolve({ segments }) {
  const [first, ...rest] = segments;
  switch (first ?? 'overview') {
    case 'overview': return rest.length ? null : { view: overview.mount, nav: 'overview' };
    case 'setup': return { view: firstRun.mount, nav: 'overview' };
    case 'uploads':
      if (rest.length === 0) return { view: uploads.mount, nav: 'uploads' };
      if (rest.length === 2) return { view: upload.mount, nav: 'uploads', args: rest };
      return null;
    case 'subjects':
      if (rest.length === 0) return { view: subjects.mountList, nav: 'subjects' };
      if (rest.length === 2) return { view: subjects.mountSubject, nav: 'subjects', args: rest };
      return null;
    case 'compliance':
      if (rest.length === 0) return { view: compliance.mountChooser, nav: 'compliance' };
      if (rest.length === 1) return { view: compliance.mount, nav: 'compliance', args: rest };
      return null;
    case 'deliveries':
      if (rest.length === 0) return { view: deliveries.mountList, nav: 'deliveries' };
      if (rest.length === 1) return { view: deliveries.mountOne, nav: 'deliveries', args: rest };
      return null;
    case 'settings': return rest.length ? null : { view: settings.mount, nav: 'settings' };
    default: return null;
  }
}

// ---- shared caches: study names and preferences (small, refreshed when they change) ----

let studyList = [];
const labels = new Map();
let preferences = { stalled_after_minutes: 120 };

async function loadStudies() {
  try {
    studyList = await api.get('/api/studies');
    labels.clear();
    for (const study of studyList) labels.set(study.study_id, study.label);
  } catch {
    // The view that needs them shows the API's error itself.
  }
  return studyList;
}

async function loadPrefs() {
  try {
    preferences = (await api.get('/api/settings')).preferences;
  } catch {
    // Defaults stand in until the API answers.
  }
  return preferences;
}

// ---- the current view ----

const viewRoot = document.getElementById('view');
let current = null; // { key, segmentsKey, controller, handle }
const memory = new Map(); // per-session notes views leave for each other (e.g. the last uploads filter)

function context(controller) {
  return {
    signal: controller.signal,
    alive: () => !controller.signal.aborted,
    studies: () => studyList,
    studyLabel: (id) => labels.get(String(id)) || null,
    knowsStudy: (id) => labels.has(String(id)),
    reloadStudies: loadStudies,
    prefs: () => preferences,
    reloadPrefs: loadPrefs,
    setTitle: (text) => {
      document.title = text ? `${text} · cpwatch` : 'cpwatch';
    },
    remember: (key, value) => memory.set(key, value),
    recall: (key) => memory.get(key),
    navigate: (hash) => {
      if (location.hash !== hash) location.hash = hash;
    },
  };
}

function highlightNav(nav) {
  for (const link of document.querySelectorAll('.nav a[data-nav]')) {
    if (link.dataset.nav === nav) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

function notFound(root, ctx) {
  ctx.setTitle('Not found');
  replace(root, h('section', { testid: 'view-not-found', class: 'view' },
    h('h1', { tabindex: '-1' }, 'Nothing here'),
    h('p', null, 'This address does not match any page of the dashboard. ', h('a', { href: '#/overview' }, 'Go to the overview'), '.')));
  return {};
}

function route() {
  const parsed = parseHash();
  const key = location.hash || '#/overview';
  if (current && current.key === key) return;
  const segmentsKey = parsed.segments.join('/');
  const pathChanged = !current || current.segmentsKey !== segmentsKey;
  const pageChanged = current && !pathChanged && current.cursor !== (parsed.query.get('cursor') || '');
  if (current && !pathChanged && current.handle.update) {
    // Same view, other filters or page: the view keeps its form (and focus) and reloads its data.
    current.key = key;
    current.cursor = parsed.query.get('cursor') || '';
    current.handle.update(parsed);
    if (pageChanged) window.scrollTo(0, 0);
    return;
  }
  if (current) current.controller.abort();
  const controller = new AbortController();
  const ctx = context(controller);
  const target = resolve(parsed);
  highlightNav(target ? target.nav : null);
  current = { key, segmentsKey, controller, cursor: parsed.query.get('cursor') || '', handle: null };
  const handle = target ? target.view(viewRoot, parsed, ctx, ...(target.args || [])) : notFound(viewRoot, ctx);
  current.handle = handle || {};
  if (pathChanged || pageChanged) window.scrollTo(0, 0);
  if (pathChanged && document.activeElement && document.activeElement.closest('.nav, .brand, #view')) {
    // Keyboard users land on the new page's heading, not on a link that is gone.
    requestAnimationFrame(() => {
      const heading = viewRoot.querySelector('h1');
      (heading || document.getElementById('main')).focus({ preventScroll: true });
    });
  }
}

// ---- live refresh: throttled, never two at once, the current view only ----

let refreshTimer = null;
let refreshing = false;
let refreshPending = false;
let lastRefresh = 0;
let studiesStale = false;
// What changed since the last refresh, for views that only care about some of it:
// the studies that had deliveries, or everything (a reconnect, a lag, other news).
let touchedStudies = new Set();
let touchedAll = false;

function requestRefresh(studyId) {
  if (studyId === undefined) touchedAll = true;
  else if (studyId !== null) touchedStudies.add(String(studyId));
  refreshPending = true;
  scheduleRefresh();
}

function scheduleRefresh() {
  if (refreshing || refreshTimer) return;
  const wait = Math.max(0, lastRefresh + REFRESH_EVERY_MS - Date.now());
  refreshTimer = setTimeout(runRefresh, wait);
}

async function runRefresh() {
  refreshTimer = null;
  if (!refreshPending || !current) return;
  refreshPending = false;
  refreshing = true;
  lastRefresh = Date.now();
  const changes = { studies: touchedStudies, all: touchedAll };
  touchedStudies = new Set();
  touchedAll = false;
  try {
    if (studiesStale) {
      studiesStale = false;
      await loadStudies();
    }
    if (current.handle.refresh) await current.handle.refresh(changes);
  } catch (e) {
    if (e.name !== 'AbortError') console.warn('live refresh failed', e);
  } finally {
    refreshing = false;
    if (refreshPending) scheduleRefresh();
  }
}

// ---- live stream ----

const live = document.getElementById('live');
const liveText = live.querySelector('.live-text');
let source = null;
let everConnected = false;

function setLive(state, text, title) {
  live.dataset.state = state;
  liveText.textContent = text;
  live.title = title;
}

function connect() {
  source = new EventSource('/api/events');
  source.addEventListener('open', () => {
    setLive('connected', 'Live', 'Connected: new deliveries appear without reloading');
    // Anything that arrived while disconnected is fetched again.
    if (everConnected) requestRefresh(undefined);
    everConnected = true;
  });
  source.addEventListener('error', () => {
    setLive('reconnecting', 'Reconnecting…', 'The live connection to cpwatch dropped; retrying');
    if (source.readyState === EventSource.CLOSED) {
      source = null;
      setTimeout(connect, 3000);
    }
  });
  source.addEventListener('delivery', (e) => {
    let study;
    try {
      const data = JSON.parse(e.data);
      if (data.study_id && !labels.has(String(data.study_id))) studiesStale = true;
      study = data.study_id ?? null;
    } catch {
      // The refresh fetches the truth anyway, for every view.
    }
    requestRefresh(study);
  });
  source.addEventListener('refused', () => requestRefresh(undefined));
  // The public URL, its reachability or the tunnel changed.
  source.addEventListener('reach', () => requestRefresh(undefined));
  source.addEventListener('lagged', () => {
    studiesStale = true;
    requestRefresh(undefined);
  });
}

// ---- start ----

document.querySelector('.skip').addEventListener('click', (e) => {
  e.preventDefault();
  const heading = viewRoot.querySelector('h1');
  (heading || document.getElementById('main')).focus();
});

window.addEventListener('hashchange', route);
// The footer: which cpwatch this is, for a bug report ("cpwatch 0.1.0, commit 1a2b3c4d5").
api
  .get('/api/version')
  .then((v) => {
    document.getElementById('app-version').textContent = `cpwatch ${v.version}, commit ${v.commit}`;
  })
  .catch(() => {});
setInterval(() => refreshRelativeTimes(), 15_000);

Promise.all([loadStudies(), loadPrefs()]).finally(() => {
  route();
  connect();
});
