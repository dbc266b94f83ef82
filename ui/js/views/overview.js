// Overview: receiver health and one card per study (counts, 30-day chart, latest
// failures, stalled uploads). With no deliveries yet, the first-run steps instead.

import * as api from '../api.js';
import { changeTracker, h, replace } from '../dom.js';
import { dayChart } from '../chart.js';
import { empty, errorBox, loading, studyTitle } from '../components.js';
import { count, duration, plural, time, uploadPill } from '../format.js';
import { links } from '../route.js';
import { copyable, firstRunSteps, sourceText, targetUrl } from './firstrun.js';

function healthItem(label, value, testid) {
  return h('div', { class: 'health-item', testid }, h('dt', null, label), h('dd', null, value));
}

function health(data) {
  const r = data.receiver;
  const target = targetUrl(r);
  const validation = data.totals.last_validation;
  return h('section', { class: 'panel health', testid: 'receiver-health', 'aria-labelledby': 'health-title' },
    h('div', { class: 'panel-head' },
      h('h2', { id: 'health-title' }, 'Receiver'),
      h('span', { class: 'panel-links' }, h('a', { href: links.setup(), testid: 'setup-link' }, 'Setup guide'), ' · ', h('a', { href: links.settings('receiver') }, 'Settings'))),
    r.authentication_off ? h('div', { class: 'warning', role: 'alert', testid: 'auth-off-warning' },
      h('strong', null, 'Authentication is off. '),
      'Anyone who knows the receiver\'s address can post deliveries. ',
      h('a', { href: links.settings('webhooks') }, 'Set a passcode for your webhook'), ' and enter the same one in the CentrePoint portal.') : null,
    reachAlerts(r),
    h('dl', { class: 'health-grid' },
      healthItem('Listening on', h('code', null, r.listening)),
      healthItem('Webhook URL', h('code', { class: 'break' }, r.webhook_url)),
      healthItem('Public URL', target
        ? h('span', null, h('code', { class: 'break', testid: 'public-url' }, target), h('span', { class: 'muted', testid: 'public-url-source' }, ` · ${sourceText(r.public_url.source)}`))
        : h('span', null, h('span', { class: 'muted' }, 'none found · '), h('a', { href: links.settings('receiver') }, 'set it'), h('span', { class: 'muted' }, ' or start a tunnel')), 'public-url-item'),
      healthItem('Reachable', reachText(r.reachability), 'reachability'),
      r.validation ? healthItem('Validation', r.validation.at_this_url ? 'validated at this URL' : h('span', { class: 'count-warn' }, 'not yet validated at this URL'), 'validation-state') : null,
      r.tunnel ? healthItem('Tunnel', tunnelText(r.tunnel), 'tunnel-status') : null,
      healthItem('Last delivery', r.last_delivery_at ? time(r.last_delivery_at, { relative: true }) : h('span', { class: 'muted' }, 'none yet'), 'last-delivery'),
      healthItem('Refused (24 h)', h('a', { href: links.deliveries({ tab: 'refused' }), class: r.refused_last_day ? 'count-warn' : '' },
        count(r.refused_last_day), r.refused_not_logged ? ` (+${count(r.refused_not_logged)} not logged)` : ''), 'refused-count'),
      healthItem('Last validation', validation
        ? h('span', null, time(validation.received_at, { relative: true }), validation.webhook_id ? ` · webhook ${validation.webhook_id}` : '', validation.auth_ok ? '' : ' · credentials did not match')
        : h('span', { class: 'muted' }, 'none')),
      data.desktop ? healthItem('Desktop app', desktopText(data.desktop), 'desktop-status') : null),
    r.tunnel && r.tunnel.lines && r.tunnel.lines.length
      ? h('details', { class: 'tunnel-output', testid: 'tunnel-output' }, h('summary', null, `Tunnel output (${r.tunnel.command})`), h('pre', null, r.tunnel.lines.join('\n')))
      : null,
    downtimeList(r.downtime));
}

/** The banners: CentrePoint cannot reach cpwatch; the URL changed and the portal must be told. */
function reachAlerts(r) {
  const alerts = [];
  const reach = r.reachability;
  if (reach && reach.state === 'unreachable') {
    alerts.push(h('div', { class: 'warning warning-critical', role: 'alert', testid: 'unreachable-warning' },
      h('strong', null, 'CentrePoint cannot reach cpwatch'), reach.since ? [' since ', time(reach.since)] : null, ': ',
      reach.reason || 'the public URL does not answer', '. Deliveries will be retried for 48 h; fix the tunnel and they arrive then.'));
  }
  if (r.url_change) {
    alerts.push(h('div', { class: 'warning', role: 'alert', testid: 'url-change-banner' },
      h('p', null, h('strong', null, 'Your webhook URL is now '), h('code', { class: 'break' }, r.url_change.url), '.'),
      h('p', null, 'In the CentrePoint portal, set the webhook\'s target URL to this URL and press Validate:'),
      copyable(r.url_change.url, 'new-webhook-url'),
      r.url_change.previous ? h('p', { class: 'muted' }, 'It was ', h('code', { class: 'break' }, r.url_change.previous), '.') : null));
  }
  return alerts;
}

function reachText(reach) {
  if (!reach) return h('span', { class: 'muted' }, 'unknown');
  const checked = reach.checked_at ? h('span', { class: 'muted' }, ' · probed ', time(reach.checked_at, { relative: true })) : null;
  if (reach.state === 'reachable') return h('span', null, h('span', { class: 'reach-ok' }, 'yes'), reach.since ? [' since ', time(reach.since, { relative: true })] : null, checked);
  if (reach.state === 'unreachable') return h('span', null, h('span', { class: 'count-warn' }, 'no'), ': ', reach.reason || '', checked);
  return h('span', { class: 'muted' }, 'unknown', reach.reason ? `: ${reach.reason}` : '');
}

function tunnelText(t) {
  const what = t.running ? `${t.kind} running${t.pid ? ` (pid ${t.pid})` : ''}` : `${t.kind} not running`;
  return h('span', null, what, t.restarts ? ` · restarted ${plural(t.restarts, 'time')}` : '',
    t.problem ? h('span', { class: 'count-warn', testid: 'tunnel-problem' }, ` · ${t.problem}`) : null);
}

/** Outages, newest first, each with what it means for CentrePoint's retries. */
function downtimeList(downtime) {
  if (!downtime || !downtime.length) return null;
  return h('section', { class: 'downtime', testid: 'downtime', 'aria-labelledby': 'downtime-title' },
    h('h3', { id: 'downtime-title' }, 'Downtime'),
    h('p', { class: 'muted' }, downtime[0].advice),
    h('ul', { class: 'downtime-list' }, downtime.slice(0, 8).map((d) => h('li', { title: d.advice },
      time(d.from), ' – ', d.to ? time(d.to) : h('strong', null, 'now'), d.to ? ` (${duration((Date.parse(d.to) - Date.parse(d.from)) / 1000)})` : '', ': ', d.reason))));
}

/** What the desktop shell reports about itself (free-form): `key: value` pairs as text. */
function desktopText(status) {
  if (typeof status !== 'object' || status === null) return String(status);
  const words = (key) => key.replace(/_/g, ' ');
  return Object.entries(status)
    .filter(([, value]) => value !== null && typeof value !== 'object')
    .map(([key, value]) => (typeof value === 'boolean' ? (value ? words(key) : `not ${words(key)}`) : `${words(key)}: ${value}`))
    .join(' · ') || 'running';
}

function statBlock(title, counts, study, since) {
  const statusLink = (status) => links.uploads({ study, status, since });
  return h('div', { class: 'stat-block' },
    h('h3', null, title),
    h('ul', { class: 'stats' },
      h('li', null, h('a', { href: statusLink('completed'), class: 'stat stat-completed' }, h('span', { class: 'stat-n' }, count(counts.completed)), h('span', { class: 'stat-label' }, 'completed'))),
      h('li', null, h('a', { href: statusLink('error'), class: ['stat', 'stat-error', counts.error && 'has-errors'] }, h('span', { class: 'stat-n' }, count(counts.error)), h('span', { class: 'stat-label' }, 'failed'))),
      h('li', null, h('a', { href: statusLink('started'), class: 'stat stat-started' }, h('span', { class: 'stat-n' }, count(counts.started)), h('span', { class: 'stat-label' }, 'started')))));
}

function uploadLine(row, ctx, what) {
  return h('li', { class: 'card-row' },
    h('span', { class: 'card-row-main' },
      uploadPill(row, ctx.prefs().stalled_after_minutes), ' ',
      h('a', { href: links.upload(row.study_id, row.upload_id) }, `Upload ${row.upload_id}`),
      row.subject_id ? h('span', { class: 'muted' }, ` · subject ${row.subject_id}`) : null,
      h('span', { class: 'card-row-time' }, what === 'failure' ? time(row.updated_at, { relative: true }) : h('span', null, 'started ', time(row.started_at || row.first_seen_at, { relative: true })))),
    what === 'failure' && row.error_message ? h('span', { class: 'card-row-message clip', title: row.error_message }, row.error_message) : null);
}

function card(study, data, ctx) {
  const id = study.study_id;
  const name = studyTitle(ctx, id, study.label);
  const weekStart = study.days.length >= 7 ? study.days[study.days.length - 7].day : '';
  return h('article', { class: 'card', testid: 'study-card', dataset: { study: id }, 'aria-label': name },
    h('header', { class: 'card-head' },
      h('div', null,
        h('h2', null, h('a', { href: links.uploads({ study: id }) }, name)),
        h('p', { class: 'card-sub' }, study.label ? `Study ${id} · ` : '', 'last delivery ', study.last_delivery_at ? time(study.last_delivery_at, { relative: true }) : 'never')),
      h('a', { class: 'card-rename small', href: links.settings('studies'), title: 'Name this study' }, study.label ? 'Rename' : 'Name it')),
    h('div', { class: 'card-stats' },
      statBlock('Today', study.today, id, data.today),
      statBlock('Last 7 days', study.last_7_days, id, weekStart)),
    dayChart(study.days),
    h('section', { class: 'card-section', testid: 'latest-failures' },
      h('h3', null, 'Latest failures'),
      study.latest_failures.length
        ? h('ul', { class: 'card-list' }, study.latest_failures.map((row) => uploadLine(row, ctx, 'failure')))
        : h('p', { class: 'muted small' }, 'No failed uploads.'),
      study.latest_failures.length ? h('a', { class: 'small', href: links.uploads({ study: id, status: 'error' }) }, 'All failed uploads') : null),
    h('section', { class: 'card-section', testid: 'stalled-uploads' },
      h('h3', null, 'Stalled', h('span', { class: 'muted small' }, ` (started over ${duration(data.stalled_after_minutes * 60)} ago, not finished)`)),
      study.stalled_count
        ? [h('ul', { class: 'card-list' }, study.stalled.map((row) => uploadLine(row, ctx, 'stalled'))),
          h('a', { class: 'small', href: links.uploads({ study: id, status: 'stalled' }) }, study.stalled_count > study.stalled.length ? `All ${plural(study.stalled_count, 'stalled upload')}` : 'Show in uploads')]
        : h('p', { class: 'muted small' }, 'None stalled.')),
    h('footer', { class: 'card-foot' },
      h('a', { href: links.uploads({ study: id }) }, 'Uploads'),
      h('a', { href: links.subjects(id) }, 'Subjects'),
      h('a', { href: links.compliance(id), testid: 'compliance-link' }, 'Compliance'),
      h('a', { href: links.deliveries({ study: id }) }, 'Deliveries')));
}

function dashboard(data, ctx, flash) {
  const t = data.totals;
  return [
    h('header', { class: 'view-head' },
      h('div', null,
        h('h1', { tabindex: '-1' }, 'Overview'),
        h('p', { class: 'subtitle' },
          `${plural(t.studies, 'study', 'studies')} · ${plural(t.subjects, 'subject')} · ${plural(t.uploads_completed + t.uploads_error + t.uploads_started, 'upload')} (${count(t.uploads_error)} failed) · ${plural(t.deliveries, 'delivery', 'deliveries')}`,
          t.flagged ? h('span', null, ' · ', h('a', { href: links.deliveries({ tab: 'flagged' }) }, `${count(t.flagged)} flagged`)) : null)),
      h('a', { class: 'button', href: links.uploads({ status: 'error' }) }, 'Failed uploads')),
    flash ? h('p', { class: 'outcome outcome-ok', role: 'status' }, flash) : null,
    health(data),
    data.studies.length
      ? h('div', { class: 'cards' }, data.studies.map((study) => card(study, data, ctx)))
      : empty('No studies yet', 'Deliveries arrived, but none named a study (validations, refused or unreadable bodies). See them under Deliveries.', h('a', { href: links.deliveries() }, 'Open deliveries')),
  ];
}

export function mount(root, route, ctx) {
  ctx.setTitle('Overview');
  const view = h('section', { class: 'view', testid: 'view-overview' }, loading());
  replace(root, view);
  let flash = null;
  let firstRunShown = false;
  const changed = changeTracker();

  const load = async () => {
    let data;
    try {
      data = await api.get('/api/overview', null, ctx.signal);
    } catch (e) {
      if (e.name === 'AbortError') return;
      if (!view.querySelector('.card, .first-run')) replace(view, errorBox(e.message));
      return;
    }
    if (!ctx.alive()) return;
    if (data.totals.deliveries === 0) {
      // The steps render once, so a test result or a copied command stays on screen.
      if (!firstRunShown) {
        firstRunShown = true;
        replace(view, firstRunSteps(data, ctx, { onAccepted: (text) => { flash = text; } }));
        view.dataset.testid = 'view-first-run';
        ctx.setTitle('Get started');
      }
      return;
    }
    if (data.studies.some((s) => !ctx.knowsStudy(s.study_id) || ctx.studyLabel(s.study_id) !== (s.label || null))) await ctx.reloadStudies();
    if (!ctx.alive() || !changed({ ...data, now: null, flash })) return;
    view.dataset.testid = 'view-overview';
    ctx.setTitle('Overview');
    replace(view, dashboard(data, ctx, flash));
  };
  load();
  return { refresh: load };
}
