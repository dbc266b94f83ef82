// Subjects: per study, each subject with its last upload and counts by status; a subject
// page with its day-by-day wear, its uploads and its other events (raw processing, data
// retrieval, daily statistics).

import * as api from '../api.js';
import { changeTracker, h, replace, rerender } from '../dom.js';
import {
  clickableRows, empty, errorBox, eventSummary, loading, studyName, studyTitle, uploadKeys, uploadsTable,
} from '../components.js';
import { count, dayText, duration, eventName, flagName, pill, plural, time } from '../format.js';
import { links } from '../route.js';
import { hoursText } from './compliance.js';

/** More rows than a person reads; the uploads filter finds the rest. */
const MAX_ROWS = 500;

function countCell(n, tone) {
  return h('td', { class: ['num', n && tone ? `count-${tone}` : null, !n && 'muted'] }, count(n));
}

function subjectsTable(subjects, studyId) {
  const table = h('table', { class: 'table', testid: 'subjects-table' },
    h('thead', null, h('tr', null,
      ['Subject', 'Identifier', 'Last upload', 'Completed', 'Failed', 'Started', 'Other events', 'Last delivery'].map((name, i) => h('th', { scope: 'col', class: i >= 3 && i <= 6 ? 'num' : null }, name)))),
    h('tbody', null, subjects.map((s) => h('tr', {
      testid: 'subject-row', class: 'clickable', dataset: { subject: s.subject_id, href: links.subject(studyId, s.subject_id) },
    },
      h('td', null, h('a', { href: links.subject(studyId, s.subject_id), testid: 'subject-link' }, s.subject_id)),
      h('td', null, s.subject_identifier || h('span', { class: 'muted' }, '—')),
      h('td', { class: 'nowrap' }, time(s.last_upload_at, { short: true, empty: 'none' })),
      countCell(s.uploads.completed, 'completed'),
      countCell(s.uploads.error, 'error'),
      countCell(s.uploads.started, 'started'),
      countCell(s.other_events),
      h('td', { class: 'nowrap' }, time(s.last_delivery_at, { relative: true }))))));
  clickableRows(table);
  return h('div', { class: 'table-wrap' }, table);
}

export function mountList(root, route, ctx) {
  ctx.setTitle('Subjects');
  const picker = h('select', { id: 'subjects-study', testid: 'subjects-study', onchange: (e) => ctx.navigate(links.subjects(e.target.value)) });
  const subtitle = h('p', { class: 'subtitle' });
  const complianceLink = h('a', { class: 'button', testid: 'subjects-compliance-link', hidden: true }, 'Compliance of this study');
  const body = h('div', { class: 'results' }, loading());
  replace(root, h('section', { class: 'view', testid: 'view-subjects' },
    h('header', { class: 'view-head' },
      h('div', null, h('h1', { tabindex: '-1' }, 'Subjects'), subtitle),
      h('div', { class: 'head-actions' },
        complianceLink,
        h('div', { class: 'field field-inline' }, h('label', { for: 'subjects-study' }, 'Study'), picker))),
    body));

  let study = route.query.get('study') || '';
  let generation = 0;

  const load = async ({ live = false } = {}) => {
    const mine = ++generation;
    const studies = ctx.studies().length ? ctx.studies() : await ctx.reloadStudies();
    if (mine !== generation || !ctx.alive()) return;
    // Without a study in the address, the most recently active one.
    const byRecent = [...studies].sort((a, b) => String(b.last_delivery_at || '').localeCompare(String(a.last_delivery_at || '')));
    const chosen = study || (byRecent[0] && byRecent[0].study_id) || '';
    if (document.activeElement !== picker) {
      const options = studies.map((s) => h('option', { value: s.study_id, selected: s.study_id === chosen }, s.label ? `${s.label} (${s.study_id})` : s.study_id));
      if (chosen && !studies.some((s) => s.study_id === chosen)) options.push(h('option', { value: chosen, selected: true }, chosen));
      replace(picker, options);
    }
    complianceLink.hidden = !chosen;
    if (chosen) complianceLink.href = links.compliance(chosen);
    if (!chosen) {
      subtitle.textContent = '';
      replace(body, empty('No studies yet', 'Subjects appear here once CentrePoint sends deliveries for them.', h('a', { href: links.setup() }, 'Open the setup guide')));
      return;
    }
    let data;
    if (!live && body.querySelector('table')) body.setAttribute('aria-busy', 'true');
    try {
      data = await api.get(api.path('studies', chosen, 'subjects'), { limit: MAX_ROWS }, ctx.signal);
    } catch (e) {
      if (e.name !== 'AbortError' && mine === generation) {
        body.removeAttribute('aria-busy');
        replace(body, errorBox(e.message));
      }
      return;
    }
    if (mine !== generation || !ctx.alive()) return;
    body.removeAttribute('aria-busy');
    const shown = data.next_cursor ? `the ${count(data.subjects.length)} most recently active subjects` : plural(data.subjects.length, 'subject');
    subtitle.textContent = `${studyTitle(ctx, chosen, data.study_label)}: ${shown}, the most recently active first.`;
    if (!data.subjects.length) {
      replace(body, empty('No subjects in this study yet', 'A subject appears with its first delivery.'));
      return;
    }
    replace(body,
      subjectsTable(data.subjects, chosen),
      data.next_cursor ? h('p', { class: 'note' }, `Showing the ${count(data.subjects.length)} most recently active subjects. Find any other with the subject filter of `, h('a', { href: links.uploads({ study: chosen }) }, 'Uploads'), '.') : null);
  };
  load();
  return {
    refresh: () => load({ live: true }),
    update(next) {
      study = next.query.get('study') || '';
      return load();
    },
  };
}

function dailyStatsTable(events) {
  const value = (v, unit) => (v === null || v === undefined ? h('span', { class: 'muted' }, '—') : `${count(Math.round(v))}${unit}`);
  return h('div', { class: 'table-wrap' }, h('table', { class: 'table', testid: 'subject-daily-stats' },
    h('thead', null, h('tr', null, ['Day', 'Wear minutes', 'Steps', 'MVPA minutes', 'Calories', 'Received', ''].map((name, i) => h('th', { scope: 'col', class: i >= 1 && i <= 4 ? 'num' : null }, name)))),
    h('tbody', null, events.map((e) => {
      const d = e.detail || {};
      return h('tr', { testid: 'subject-event', dataset: { seq: e.seq, event: e.event } },
        h('td', { class: 'nowrap' }, d.date || '—', e.event === 'cp2_daily_statistics_complete' ? h('span', { class: 'id' }, ' CP2') : null),
        h('td', { class: 'num', title: d.wear_minutes ? duration(d.wear_minutes * 60) : null }, value(d.wear_minutes, '')),
        h('td', { class: 'num' }, value(d.steps, '')),
        h('td', { class: 'num' }, value(d.mvpa, '')),
        h('td', { class: 'num' }, value(d.calories, ' kcal')),
        h('td', { class: 'nowrap' }, time(e.received_at)),
        h('td', null, h('a', { href: links.delivery(e.seq), class: 'small' }, 'Raw')));
    }))));
}

/** The subject's last complete days, most recent first: wear hours, valid or not, uploads. */
function wearTable(wear) {
  const threshold = `${hoursText(wear.valid_day_minutes)} h`;
  return h('div', { class: 'table-wrap' }, h('table', { class: 'table wear-table', testid: 'subject-wear-table' },
    h('caption', { class: 'sr-only' }, `Wear per day, a valid day has at least ${threshold} of wear`),
    h('thead', null, h('tr', null, ['Day', 'Wear hours', 'Valid day', 'Uploads'].map((name, i) => h('th', { scope: 'col', class: i === 1 || i === 3 ? 'num' : null }, name)))),
    h('tbody', null, wear.days.map((d) => {
      const known = d.wear_minutes !== null && d.wear_minutes !== undefined;
      const state = !known ? 'none' : d.valid ? 'valid' : 'below';
      return h('tr', { testid: 'wear-row', dataset: { day: d.day } },
        h('td', { class: 'nowrap' }, dayText(d.day, { long: true })),
        h('td', { class: 'num', title: known ? `${Math.round(d.wear_minutes)} min` : null }, known ? hoursText(d.wear_minutes) : h('span', { class: 'muted' }, '—')),
        h('td', null, h('span', { class: ['day-mark', `day-${state}`] }, !known ? 'No data' : d.valid ? 'Valid' : `Below ${threshold}`)),
        h('td', { class: ['num', !d.uploads && 'muted'] }, count(d.uploads)));
    }))));
}

function otherEventsTable(events) {
  return h('div', { class: 'table-wrap' }, h('table', { class: 'table', testid: 'subject-other-events' },
    h('thead', null, h('tr', null, ['Received', 'Event', 'Status', 'Details', ''].map((name) => h('th', { scope: 'col' }, name)))),
    h('tbody', null, events.map((e) => h('tr', { testid: 'subject-event', dataset: { seq: e.seq, event: e.event } },
      h('td', { class: 'nowrap' }, time(e.received_at)),
      h('td', null, eventName(e.event), e.flag ? [' ', h('span', { class: 'pill pill-stalled' }, flagName(e.flag))] : null),
      h('td', null, e.status ? pill(e.status) : h('span', { class: 'muted' }, '—')),
      h('td', { class: 'message' }, h('span', { class: 'clip', title: eventSummary(e) }, eventSummary(e))),
      h('td', null, h('a', { href: links.delivery(e.seq), class: 'small' }, 'Raw')))))));
}

function renderSubject(data, ctx, seen) {
  const study = data.study_id;
  const daily = data.events.filter((e) => e.event === 'daily_statistics_complete' || e.event === 'cp2_daily_statistics_complete');
  const other = data.events.filter((e) => !daily.includes(e));
  const identifier = data.events.map((e) => e.detail && e.detail.subject_identifier).find(Boolean);
  const uploads = data.uploads.items;
  return h('section', { class: 'view', testid: 'view-subject' },
    h('a', { class: 'back', href: links.subjects(study) }, `← Subjects of ${studyTitle(ctx, study, data.study_label)}`),
    h('header', { class: 'view-head' },
      h('div', null,
        h('h1', { tabindex: '-1' }, `Subject ${data.subject_id}`),
        h('p', { class: 'subtitle' }, studyName(ctx, study, { link: true, bare: false }), identifier ? ` · identifier ${identifier}` : '')),
      h('div', { class: 'head-actions' },
        h('a', { class: 'button', href: links.compliance(study) }, 'Compliance of the study'),
        h('a', { class: 'button', href: links.uploads({ study, subject: data.subject_id }) }, 'All uploads of this subject'))),
    h('section', { class: 'panel', testid: 'subject-uploads', 'aria-labelledby': 'subject-uploads-title' },
      h('h2', { id: 'subject-uploads-title' }, 'Uploads'),
      uploads.length
        ? [uploadsTable(uploads, ctx, { showStudy: false, showSubject: false, seen, testid: 'subject-uploads-table' }),
          data.uploads.next_cursor ? h('p', null, h('a', { href: links.uploads({ study, subject: data.subject_id }), testid: 'subject-all-uploads' }, `These are the ${count(uploads.length)} most recent. All uploads of subject ${data.subject_id} →`)) : null]
        : h('p', { class: 'muted' }, 'No uploads from this subject yet.')),
    h('section', { class: 'panel', testid: 'subject-wear', 'aria-labelledby': 'subject-wear-title' },
      h('h2', { id: 'subject-wear-title' }, 'Wear, day by day'),
      h('p', { class: 'hint' }, `The last ${plural(data.wear.days.length, 'complete day')}, by the subject's local date; a valid day has at least ${hoursText(data.wear.valid_day_minutes)} h of wear. Uploads are counted by the day they arrived.`),
      wearTable(data.wear)),
    h('section', { class: 'panel', testid: 'subject-events', 'aria-labelledby': 'subject-events-title' },
      h('h2', { id: 'subject-events-title' }, 'Other events'),
      !data.events.length ? h('p', { class: 'muted' }, 'No raw processing, data retrieval or daily statistics events for this subject.') : null,
      daily.length ? [h('h3', null, `Daily statistics (${count(daily.length)})`), dailyStatsTable(daily)] : null,
      other.length ? [h('h3', null, `Processing, retrieval and other events (${count(other.length)})`), otherEventsTable(other)] : null,
      data.events.length >= 200 ? h('p', { class: 'note' }, 'The 200 most recent events. ', h('a', { href: links.deliveries({ study, subject: data.subject_id }) }, 'All deliveries of this subject')) : null));
}

export function mountSubject(root, route, ctx, study, subject) {
  ctx.setTitle(`Subject ${subject}`);
  replace(root, h('section', { class: 'view', testid: 'view-subject' }, loading()));
  let seen = null;
  let shown = false;
  const changed = changeTracker();
  const load = async ({ live = false } = {}) => {
    let data;
    try {
      data = await api.get(api.path('studies', study, 'subjects', subject), null, ctx.signal);
    } catch (e) {
      if (e.name !== 'AbortError' && !shown) replace(root, h('section', { class: 'view', testid: 'view-subject' }, h('h1', { tabindex: '-1' }, `Subject ${subject}`), errorBox(e.message)));
      return;
    }
    if (!ctx.alive() || !changed(data)) return;
    rerender(root, () => renderSubject(data, ctx, live ? seen : null));
    seen = uploadKeys(data.uploads.items);
    shown = true;
  };
  load();
  return { refresh: () => load({ live: true }) };
}
