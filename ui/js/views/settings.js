// Settings: webhooks and their authentication (secrets are write-only), study names,
// each study's compliance protocol and roster, notification preferences, the public
// URL, retention and the stalled threshold.

import * as api from '../api.js';
import { h, replace } from '../dom.js';
import { errorBox, loading, outcome } from '../components.js';
import { count, plural, time } from '../format.js';
import { links } from '../route.js';

const MODES = [
  ['passcode', 'Signing passcode (recommended)', 'Passcode'],
  ['basic', 'HTTP Basic', 'Password'],
  ['bearer', 'Bearer token', 'Token'],
  ['none', 'None', ''],
];
const MODE_NAMES = { passcode: 'Signing passcode', basic: 'HTTP Basic', bearer: 'Bearer token', none: 'None' };

function field(label, control, hint) {
  const hintId = hint ? `${control.id}-hint` : null;
  if (hintId) control.setAttribute('aria-describedby', hintId);
  return h('div', { class: 'field' }, h('label', { for: control.id }, label), control, hint ? h('p', { class: 'hint', id: hintId }, hint) : null);
}

function checkbox(id, label, checked, hint) {
  const input = h('input', { type: 'checkbox', id, testid: id, checked });
  return h('div', { class: 'check' }, input, h('label', { for: id }, label, hint ? h('span', { class: 'hint' }, ` ${hint}`) : null));
}

/** Shows a message carried over a re-render (the panel is rebuilt after each change). */
function carry(result, flash) {
  if (flash && flash.ok) result.ok(flash.ok);
  if (flash && flash.fail) result.fail(flash.fail);
}

function webhooksPanel(settings, ctx, reload, flash = {}) {
  const hooks = settings.webhooks;
  const result = outcome('webhook-result');
  carry(result, flash.form);
  const id = h('input', { id: 'webhook-id', testid: 'webhook-id', type: 'text', required: true, autocomplete: 'off', spellcheck: 'false', placeholder: 'e.g. 15' });
  const label = h('input', { id: 'webhook-label', testid: 'webhook-label', type: 'text', autocomplete: 'off', placeholder: 'e.g. Sleep study' });
  const mode = h('select', { id: 'webhook-mode', testid: 'webhook-mode' }, MODES.map(([value, text]) => h('option', { value }, text)));
  const user = h('input', { id: 'webhook-user', testid: 'webhook-user', type: 'text', autocomplete: 'off' });
  const secret = h('input', { id: 'webhook-secret', testid: 'webhook-secret', type: 'password', autocomplete: 'new-password' });
  const userField = field('User name', user);
  const secretLabel = h('label', { for: 'webhook-secret' }, 'Passcode');
  const secretHint = h('p', { class: 'hint', id: 'webhook-secret-hint' });
  secret.setAttribute('aria-describedby', 'webhook-secret-hint');
  const secretField = h('div', { class: 'field' }, secretLabel, secret, secretHint);
  const title = h('h3', { id: 'webhook-form-title' }, 'Add a webhook');
  const cancel = h('button', { type: 'button', class: 'button button-quiet', testid: 'webhook-cancel', hidden: true }, 'Cancel');
  const save = h('button', { type: 'submit', class: 'button button-primary', testid: 'webhook-save' }, 'Add webhook');
  let editing = null;

  const syncMode = () => {
    const m = MODES.find(([value]) => value === mode.value);
    userField.hidden = mode.value !== 'basic';
    secretField.hidden = mode.value === 'none';
    secretLabel.textContent = m[2];
    const keep = editing && editing.secret_set && editing.auth_mode === mode.value;
    secret.placeholder = keep ? 'Leave empty to keep the current one' : '';
    secretHint.textContent = keep
      ? 'A secret is set. It is never shown; type a new one to replace it.'
      : mode.value === 'passcode' ? 'The same passcode as in the CentrePoint portal. It is stored here and never shown again.' : 'Stored here and never shown again.';
  };
  mode.addEventListener('change', syncMode);

  const reset = () => {
    editing = null;
    id.value = '';
    id.readOnly = false;
    label.value = '';
    mode.value = 'passcode';
    user.value = '';
    secret.value = '';
    title.textContent = 'Add a webhook';
    save.textContent = 'Add webhook';
    cancel.hidden = true;
    syncMode();
  };
  cancel.addEventListener('click', () => {
    reset();
    result.clear();
  });

  const edit = (hook) => {
    editing = hook;
    id.value = hook.webhook_id;
    id.readOnly = true;
    label.value = hook.label || '';
    mode.value = hook.auth_mode;
    user.value = hook.basic_user || '';
    secret.value = '';
    title.textContent = `Edit webhook ${hook.webhook_id}`;
    save.textContent = 'Save changes';
    cancel.hidden = false;
    syncMode();
    result.clear();
    form.scrollIntoView({ block: 'nearest' });
    label.focus();
  };

  const form = h('form', {
    class: 'subform', testid: 'webhook-form', 'aria-labelledby': 'webhook-form-title',
    onsubmit: async (e) => {
      e.preventDefault();
      result.clear();
      const webhookId = id.value.trim();
      if (!webhookId) {
        result.fail('Enter the webhook id the CentrePoint portal shows (a number such as 15), or "default".');
        id.focus();
        return;
      }
      const body = { label: label.value.trim() || null, auth_mode: mode.value };
      if (mode.value === 'basic') body.user = user.value.trim() || null;
      if (mode.value !== 'none' && secret.value) body.secret = secret.value;
      save.disabled = true;
      try {
        const saved = await api.put(api.path('webhooks', webhookId), body);
        secret.value = '';
        await reload({ form: { ok: `Webhook ${saved.webhook_id} saved (${MODE_NAMES[saved.auth_mode]}${saved.secret_set ? ', secret set' : ''}). It applies to deliveries within a second.` } });
      } catch (err) {
        result.fail(err.message);
      } finally {
        save.disabled = false;
      }
    },
  },
    title,
    h('div', { class: 'form-grid' },
      field('Webhook id', id, 'As shown in the CentrePoint portal; "default" covers any other id.'),
      field('Label', label),
      field('Authentication', mode),
      userField,
      secretField),
    h('div', { class: 'button-row' }, save, cancel),
    result.el);

  const rowResult = outcome('webhook-row-result');
  carry(rowResult, flash.rows);
  const rows = hooks.map((hook) => {
    const remove = h('button', { type: 'button', class: 'button button-small button-danger', testid: 'webhook-remove' }, 'Remove');
    let armed = null;
    remove.addEventListener('click', async () => {
      if (!armed) {
        remove.textContent = 'Click again to remove';
        armed = setTimeout(() => {
          armed = null;
          remove.textContent = 'Remove';
        }, 5000);
        return;
      }
      clearTimeout(armed);
      armed = null;
      remove.disabled = true;
      try {
        await api.del(api.path('webhooks', hook.webhook_id));
        await reload({ rows: { ok: `Webhook ${hook.webhook_id} removed.` } });
      } catch (err) {
        remove.disabled = false;
        remove.textContent = 'Remove';
        rowResult.fail(err.message);
      }
    });
    return h('tr', { testid: 'webhook-row', dataset: { webhook: hook.webhook_id } },
      h('td', null, h('code', null, hook.webhook_id)),
      h('td', null, hook.label || h('span', { class: 'muted' }, '—')),
      h('td', null, MODE_NAMES[hook.auth_mode] || hook.auth_mode, hook.basic_user ? h('span', { class: 'muted' }, ` (${hook.basic_user})`) : null),
      h('td', null, hook.auth_mode === 'none' ? h('span', { class: 'muted' }, 'not needed') : hook.secret_set ? h('span', { class: 'pill pill-completed' }, 'Secret set') : h('span', { class: 'pill pill-error' }, 'No secret')),
      h('td', { class: 'nowrap' }, time(hook.updated_at)),
      h('td', { class: 'actions' },
        h('button', { type: 'button', class: 'button button-small', testid: 'webhook-edit', onclick: () => edit(hook) }, 'Edit'), ' ', remove));
  });

  reset();
  return h('section', { class: 'panel', id: 'settings-webhooks', 'aria-labelledby': 'webhooks-title' },
    h('h2', { id: 'webhooks-title' }, 'Webhooks'),
    h('p', { class: 'hint' }, 'How each CentrePoint webhook proves its deliveries are genuine. Set the same authentication in the portal, then press Validate there.'),
    hooks.length
      ? h('div', { class: 'table-wrap' }, h('table', { class: 'table', testid: 'webhooks-table' },
        h('thead', null, h('tr', null, ['Webhook id', 'Label', 'Authentication', 'Secret', 'Updated', ''].map((n) => h('th', { scope: 'col' }, n)))),
        h('tbody', null, rows)))
      : h('div', { class: 'warning', testid: 'webhooks-empty' }, h('strong', null, 'No webhooks configured: authentication is off. '), 'Any request to the receiver is accepted. Add the webhook id from the portal with a signing passcode.'),
    rowResult.el,
    form);
}

function studyNamesPanel(ctx, refresh, flash) {
  const result = outcome('study-name-result');
  carry(result, flash);
  const saveName = async (studyId, name, button) => {
    result.clear();
    button.disabled = true;
    try {
      await api.put(api.path('studies', studyId), { label: name.trim() || null });
      await ctx.reloadStudies();
      refresh({ ok: name.trim() ? `Study ${studyId} is now called “${name.trim()}”.` : `Study ${studyId} has no name now.` });
    } catch (err) {
      result.fail(err.message);
      button.disabled = false;
    }
  };
  const studies = ctx.studies();
  const rows = studies.map((study) => {
    const input = h('input', { type: 'text', id: `study-name-${study.study_id}`, testid: 'study-name-input', dataset: { study: study.study_id }, value: study.label || '', maxlength: '100', placeholder: `Study ${study.study_id}` });
    const form = h('form', {
      class: 'inline-form',
      onsubmit: (e) => {
        e.preventDefault();
        saveName(study.study_id, input.value, button);
      },
    }, h('label', { for: input.id, class: 'sr-only' }, `Name of study ${study.study_id}`), input);
    const button = h('button', { type: 'submit', class: 'button button-small', testid: 'study-name-save' }, 'Save');
    form.append(button);
    return h('tr', null, h('td', null, h('code', null, study.study_id)), h('td', null, form), h('td', { class: 'num' }, String(study.subjects)));
  });
  const newId = h('input', { type: 'text', id: 'new-study-id', testid: 'new-study-id', autocomplete: 'off', placeholder: 'e.g. 189' });
  const newName = h('input', { type: 'text', id: 'new-study-name', testid: 'new-study-name', maxlength: '100', autocomplete: 'off' });
  const newSave = h('button', { type: 'submit', class: 'button', testid: 'new-study-save' }, 'Name it');
  const newForm = h('form', {
    class: 'subform form-row new-study',
    onsubmit: (e) => {
      e.preventDefault();
      if (!newId.value.trim()) {
        result.fail('Enter the study id as CentrePoint sends it.');
        newId.focus();
        return;
      }
      saveName(newId.value.trim(), newName.value, newSave);
    },
  }, field('Study id', newId), field('Name', newName), h('div', { class: 'field field-buttons' }, newSave));
  return h('section', { class: 'panel', id: 'settings-studies', testid: 'study-names', 'aria-labelledby': 'studies-title' },
    h('h2', { id: 'studies-title' }, 'Study names'),
    h('p', { class: 'hint' }, 'CentrePoint only sends study ids. Name them here; an empty name shows the id again.'),
    studies.length
      ? h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
        h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Study id'), h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col', class: 'num' }, 'Subjects'))),
        h('tbody', null, rows)))
      : h('p', { class: 'muted' }, 'No studies yet. You can name one before its first delivery:'),
    result.el,
    h('h3', null, 'Name another study'),
    newForm);
}

/** A whole number from a field, or an error that names the field. */
function wholeNumber(input, name) {
  const text = input.value.trim();
  const value = Number(text);
  if (!text || !Number.isInteger(value) || value < 0) throw new Error(`${name} must be a whole number.`);
  return value;
}

/**
 * Per study: the compliance protocol (what the API refuses is said next to the form)
 * and the roster, imported from a CSV file whole or not at all.
 */
function compliancePanel(ctx, state) {
  const studies = ctx.studies();
  if (!studies.length) {
    return h('section', { class: 'panel', id: 'settings-compliance', testid: 'compliance-settings', 'aria-labelledby': 'compliance-title' },
      h('h2', { id: 'compliance-title' }, 'Compliance'),
      h('p', { class: 'muted' }, 'No studies yet. Name one under Study names to set its protocol and import its roster before its first delivery.'));
  }
  if (!studies.some((s) => s.study_id === state.study)) state.study = studies[0].study_id;
  const study = studies.find((s) => s.study_id === state.study);
  const p = study.protocol;
  const picker = h('select', { id: 'protocol-study', testid: 'protocol-study' },
    studies.map((s) => h('option', { value: s.study_id, selected: s.study_id === study.study_id }, s.label ? `${s.label} (${s.study_id})` : `Study ${s.study_id}`)));
  const number = (id, value, min, max) => h('input', { id, testid: id, type: 'number', min: String(min), max: String(max), step: '1', inputmode: 'numeric', value: String(value) });
  const validMinutes = number('protocol-valid-day-minutes', p.valid_day_minutes, 1, 1440);
  const perWeek = number('protocol-valid-days-per-week', p.valid_days_per_week, 1, 7);
  const silentAfter = number('protocol-silent-after', p.silent_after_days, 1, 365);
  const from = h('input', { id: 'protocol-monitoring-from', testid: 'protocol-monitoring-from', type: 'date', value: p.monitoring_from || '' });
  const until = h('input', { id: 'protocol-monitoring-until', testid: 'protocol-monitoring-until', type: 'date', value: p.monitoring_until || '' });
  const weekend = checkbox('protocol-weekend', 'One of the valid days must be a Saturday or Sunday', p.weekend_day_required);
  const protocolResult = outcome('protocol-result');
  carry(protocolResult, state.flash);
  state.flash = null;
  const protocolSave = h('button', { type: 'submit', class: 'button button-primary', testid: 'protocol-save' }, 'Save protocol');

  // No browser validation: the API's own message says what is wrong, next to the form.
  const protocolForm = h('form', {
    class: 'subform', 'aria-labelledby': 'protocol-title', novalidate: true,
    onsubmit: async (e) => {
      e.preventDefault();
      protocolResult.clear();
      let body;
      try {
        body = {
          valid_day_minutes: wholeNumber(validMinutes, 'The wear minutes of a valid day'),
          valid_days_per_week: wholeNumber(perWeek, 'The valid days a week'),
          weekend_day_required: weekend.querySelector('input').checked,
          silent_after_days: wholeNumber(silentAfter, 'The days without an upload'),
          monitoring_from: from.value || null,
          monitoring_until: until.value || null,
        };
      } catch (err) {
        protocolResult.fail(err.message);
        return;
      }
      protocolSave.disabled = true;
      try {
        await api.put(api.path('studies', study.study_id), body);
        await ctx.reloadStudies();
        state.flash = { ok: `Saved the protocol of ${study.label || `study ${study.study_id}`}.` };
        state.redraw();
      } catch (err) {
        protocolResult.fail(err.message);
        protocolSave.disabled = false;
      }
    },
  },
    h('h3', { id: 'protocol-title' }, 'Protocol'),
    h('div', { class: 'form-grid' },
      field('Wear minutes for a valid day', validMinutes, '600 (10 h) is the NHANES convention; 24-hour wrist protocols often use 960 (16 h).'),
      field('Valid days a week', perWeek, '4 is the NHANES adherence rule.'),
      field('Silent after (days without an upload)', silentAfter),
      field('Monitoring from', from, 'Optional: days before it are not expected.'),
      field('Monitoring until', until, 'Optional.')),
    weekend,
    h('div', { class: 'button-row' }, protocolSave),
    protocolResult.el);

  const file = h('input', { id: 'roster-file', testid: 'roster-file', type: 'file', accept: '.csv,text/csv' });
  const rosterResult = outcome('roster-result');
  const problems = h('ul', { class: 'problems', testid: 'roster-problems', hidden: true });
  const summary = h('p', { class: 'hint', testid: 'roster-summary' });
  const rosterSave = h('button', { type: 'submit', class: 'button', testid: 'roster-upload' }, 'Import roster');
  const showSummary = async () => {
    try {
      const r = await api.get(api.path('studies', study.study_id, 'roster'), null, ctx.signal);
      const seen = r.roster.filter((row) => row.seen).length;
      summary.textContent = r.roster.length
        ? `On the roster: ${plural(r.roster.length, 'subject')}, ${count(seen)} seen in deliveries${r.unlisted.length ? `; ${plural(r.unlisted.length, 'subject')} seen but not on it` : ''}.`
        : 'No roster yet: subjects are known only once a delivery names them.';
    } catch (err) {
      if (err.name !== 'AbortError') summary.textContent = err.message;
    }
  };
  const rosterForm = h('form', {
    class: 'subform', 'aria-labelledby': 'roster-title',
    onsubmit: async (e) => {
      e.preventDefault();
      rosterResult.clear();
      problems.hidden = true;
      replace(problems);
      const chosen = file.files && file.files[0];
      if (!chosen) {
        rosterResult.fail('Choose a CSV file first.');
        return;
      }
      rosterSave.disabled = true;
      try {
        const bytes = await chosen.arrayBuffer();
        const done = await api.postFile(api.path('studies', study.study_id, 'roster'), bytes, 'text/csv');
        rosterResult.ok(`Imported ${plural(done.total, 'subject')} from ${chosen.name} (${count(done.added)} added, ${count(done.updated)} updated, ${count(done.removed)} removed).`);
        file.value = '';
        await showSummary();
      } catch (err) {
        if (err.problems && err.problems.length) {
          rosterResult.fail(`${chosen.name} was not imported and the roster is unchanged. Fix these lines and import it again:`);
          replace(problems, err.problems.map((pr) => h('li', { testid: 'roster-problem', dataset: { line: pr.line } }, `Line ${pr.line}: ${pr.message}`)));
          problems.hidden = false;
        } else {
          rosterResult.fail(err.message);
        }
      } finally {
        rosterSave.disabled = false;
      }
    },
  },
    h('h3', { id: 'roster-title' }, 'Roster'),
    h('p', { class: 'hint' }, 'A CSV file with a subject_id column and, optionally, label, enrolled_on and expected_until (YYYY-MM-DD), separated by , or ;. It replaces the study\'s roster; a file with any bad row imports nothing.'),
    summary,
    h('div', { class: 'form-row' }, field('Roster file', file), h('div', { class: 'field field-buttons' }, rosterSave)),
    rosterResult.el,
    problems);

  picker.addEventListener('change', () => {
    state.study = picker.value;
    state.redraw();
  });
  showSummary();
  return h('section', { class: 'panel', id: 'settings-compliance', testid: 'compliance-settings', 'aria-labelledby': 'compliance-title' },
    h('div', { class: 'panel-head' },
      h('h2', { id: 'compliance-title' }, 'Compliance'),
      h('a', { class: 'panel-links', href: links.compliance(study.study_id) }, 'Open the compliance view')),
    h('div', { class: 'field field-inline' }, h('label', { for: 'protocol-study' }, 'Study'), picker),
    protocolForm,
    rosterForm);
}

function preferencesPanels(settings, ctx, reloadAll) {
  const prefs = settings.preferences;
  const n = prefs.notifications;
  const receiver = settings.receiver;
  const publicUrl = h('input', { id: 'pref-public-url', testid: 'pref-public-url', type: 'url', value: prefs.public_url || '', placeholder: receiver.configured_public_url || 'https://example.ngrok-free.app', autocomplete: 'off', spellcheck: 'false' });
  const retention = h('input', { id: 'pref-retention', testid: 'pref-retention', type: 'number', min: '1', step: '1', inputmode: 'numeric', value: prefs.retention_days ?? '', placeholder: 'Keep everything' });
  const stalled = h('input', { id: 'pref-stalled', testid: 'pref-stalled', type: 'number', min: '1', max: '10080', step: '1', inputmode: 'numeric', value: prefs.stalled_after_minutes });
  const groupWindow = h('input', { id: 'pref-group-window', testid: 'pref-group-window', type: 'number', min: '0', max: '3600', step: '1', value: n.group_window_seconds });
  const quietStart = h('input', { id: 'pref-quiet-start', testid: 'pref-quiet-start', type: 'time', value: n.quiet_hours ? n.quiet_hours.start : '' });
  const quietEnd = h('input', { id: 'pref-quiet-end', testid: 'pref-quiet-end', type: 'time', value: n.quiet_hours ? n.quiet_hours.end : '' });
  const checks = {
    upload_completed: checkbox('pref-notify-completed', 'An upload completed', n.upload_completed),
    upload_failed: checkbox('pref-notify-failed', 'An upload failed', n.upload_failed),
    upload_started: checkbox('pref-notify-started', 'An upload started', n.upload_started),
    other_failures: checkbox('pref-notify-other', 'Raw processing or data retrieval failed', n.other_failures),
  };
  const compliance = {
    silent_subjects: checkbox('pref-notify-silent', 'A subject has not synced for the study\'s silent period', n.silent_subjects),
    below_target: checkbox('pref-notify-below-target', 'A subject\'s week can no longer reach its valid days', n.below_target),
  };
  const digestOn = checkbox('pref-digest-on', 'A morning digest per study (silent, below target, yesterday\'s uploads) at', n.digest_at !== null);
  const digestAt = h('input', { id: 'pref-digest-at', testid: 'pref-digest-at', type: 'time', value: n.digest_at || '08:00', 'aria-label': 'Digest time' });
  const digestBox = digestOn.querySelector('input');
  digestAt.disabled = !digestBox.checked;
  digestBox.addEventListener('change', () => {
    digestAt.disabled = !digestBox.checked;
  });
  digestOn.append(' ', digestAt);
  const known = ctx.studies();
  const mutedOthers = n.muted_studies.filter((id) => !known.some((s) => s.study_id === id));
  const mutedBoxes = known.map((s) => {
    const box = h('input', { type: 'checkbox', id: `pref-muted-${s.study_id}`, testid: 'pref-muted', dataset: { study: s.study_id }, checked: n.muted_studies.includes(s.study_id) });
    return h('div', { class: 'check' }, box, h('label', { for: box.id }, s.label ? `${s.label} (${s.study_id})` : `Study ${s.study_id}`));
  });

  const collect = () => {
    const number = (input, name) => {
      const text = input.value.trim();
      if (!text) return null;
      const value = Number(text);
      if (!Number.isInteger(value) || value < 0) throw new Error(`${name} must be a whole number.`);
      return value;
    };
    if (Boolean(quietStart.value) !== Boolean(quietEnd.value)) throw new Error('Quiet hours need both a start and an end (or neither).');
    if (digestBox.checked && !digestAt.value) throw new Error('Enter the digest\'s time, or turn the digest off.');
    const stalledMinutes = number(stalled, 'The stalled threshold');
    if (stalledMinutes === null) throw new Error('Enter a stalled threshold in minutes.');
    return {
      public_url: publicUrl.value.trim() || null,
      retention_days: number(retention, 'Retention'),
      stalled_after_minutes: stalledMinutes,
      notifications: {
        upload_completed: checks.upload_completed.querySelector('input').checked,
        upload_failed: checks.upload_failed.querySelector('input').checked,
        upload_started: checks.upload_started.querySelector('input').checked,
        other_failures: checks.other_failures.querySelector('input').checked,
        group_window_seconds: number(groupWindow, 'The grouping window') ?? 0,
        quiet_hours: quietStart.value ? { start: quietStart.value.slice(0, 5), end: quietEnd.value.slice(0, 5) } : null,
        silent_subjects: compliance.silent_subjects.querySelector('input').checked,
        below_target: compliance.below_target.querySelector('input').checked,
        digest_at: digestBox.checked ? digestAt.value.slice(0, 5) : null,
        muted_studies: [...mutedOthers, ...mutedBoxes.map((d) => d.querySelector('input')).filter((b) => b.checked).map((b) => b.dataset.study)],
      },
    };
  };

  const results = [];
  const saver = (result, button) => async (e) => {
    e.preventDefault();
    for (const other of results) other.clear();
    let body;
    try {
      body = collect();
    } catch (err) {
      result.fail(err.message);
      return;
    }
    button.disabled = true;
    try {
      await api.put('/api/settings', body);
      await ctx.reloadPrefs();
      result.ok('Saved.');
      reloadAll({ keepResults: true });
    } catch (err) {
      result.fail(err.message);
    } finally {
      button.disabled = false;
    }
  };

  const urlResult = outcome('public-url-result');
  results.push(urlResult);
  const urlSave = h('button', { type: 'submit', class: 'button', testid: 'public-url-save' }, 'Save');
  const receiverPanel = h('section', { class: 'panel', id: 'settings-receiver', testid: 'receiver-settings', 'aria-labelledby': 'receiver-title' },
    h('h2', { id: 'receiver-title' }, 'Receiver'),
    h('dl', { class: 'facts' },
      h('dt', null, 'Listening on'), h('dd', null, h('code', null, receiver.listening)),
      h('dt', null, 'Webhook URL'), h('dd', null, h('code', { class: 'break' }, receiver.webhook_url)),
      receiver.configured_public_url ? [h('dt', null, 'From the configuration file'), h('dd', null, h('code', { class: 'break' }, receiver.configured_public_url))] : null),
    h('form', { class: 'subform', onsubmit: saver(urlResult, urlSave) },
      h('div', { class: 'form-row' },
        field('Public URL', publicUrl, 'The https:// address your tunnel gives the receiver. Shown on the overview and in the setup steps; it changes nothing in the receiver.'),
        h('div', { class: 'field field-buttons' }, urlSave)),
      urlResult.el));

  const prefsResult = outcome('prefs-result');
  results.push(prefsResult);
  const prefsSave = h('button', { type: 'submit', class: 'button button-primary', testid: 'prefs-save' }, 'Save preferences');
  const prefsForm = h('form', { class: 'settings-body', testid: 'prefs-form', onsubmit: saver(prefsResult, prefsSave) },
    h('section', { class: 'panel', id: 'settings-notifications', 'aria-labelledby': 'notifications-title' },
      h('h2', { id: 'notifications-title' }, 'Notifications'),
      h('p', { class: 'hint' }, 'What the cpwatch desktop app tells you about.'),
      h('fieldset', null, h('legend', null, 'Notify me when'), Object.values(checks)),
      h('fieldset', null, h('legend', null, 'Compliance'), Object.values(compliance), digestOn,
        h('p', { class: 'hint' }, 'The digest opens the study\'s compliance view. These follow quiet hours and mutes like other news.')),
      h('div', { class: 'form-grid' },
        field('Group a burst for up to (seconds)', groupWindow, 'Deliveries arriving together make one notification, told once 5 seconds pass with nothing new, or after this long at most. 0 does not wait.'),
        field('Quiet hours from', quietStart, 'During quiet hours only failures and stalled uploads notify.'),
        field('until', quietEnd)),
      known.length || mutedOthers.length
        ? h('fieldset', null, h('legend', null, 'Never notify for these studies'), mutedBoxes,
          mutedOthers.length ? h('p', { class: 'hint' }, `Also muted: ${mutedOthers.join(', ')}`) : null)
        : null),
    h('section', { class: 'panel', id: 'settings-data', 'aria-labelledby': 'data-title' },
      h('h2', { id: 'data-title' }, 'Data'),
      h('div', { class: 'form-grid' },
        field('Keep deliveries for (days)', retention, 'Empty keeps everything (the default). Older deliveries and uploads are deleted.'),
        field('Stalled after (minutes)', stalled, 'An upload still “started” after this long is shown as stalled.'))),
    h('div', { class: 'button-row sticky-save' }, prefsSave, prefsResult.el));

  return [receiverPanel, prefsForm];
}

/**
 * The desktop app's own settings (only when the dashboard runs inside it): starting at
 * login. A change applies at once, like the tray's toggle. The tray can change it too,
 * while this page is open: the box is read again whenever the window gets the focus back.
 */
function desktopPanel(desktop, ctx) {
  const result = outcome('start-at-login-result');
  const available = desktop.start_at_login !== null;
  const box = checkbox('start-at-login', 'Start cpwatch when I log in', Boolean(desktop.start_at_login),
    available ? 'It starts in the tray, without opening this window.' : '(not available: no autostart directory is known)');
  const input = box.querySelector('input');
  input.disabled = !available;
  let changes = 0;
  input.addEventListener('change', async () => {
    changes += 1;
    const wanted = input.checked;
    input.disabled = true;
    result.clear();
    try {
      const now = await api.put('/api/desktop', { start_at_login: wanted });
      input.checked = Boolean(now.start_at_login);
      result.ok(now.start_at_login ? 'cpwatch will start when you log in.' : 'cpwatch will not start at login.');
    } catch (err) {
      input.checked = !wanted;
      result.fail(err.message);
    } finally {
      input.disabled = false;
    }
  });
  window.addEventListener('focus', async () => {
    const before = changes;
    if (input.disabled && available) return; // a change of ours is on its way
    try {
      const settings = await api.get('/api/settings', null, ctx.signal);
      // A change made meanwhile answers for itself: this reading may be older.
      if (settings.desktop && changes === before) input.checked = Boolean(settings.desktop.start_at_login);
    } catch (e) {
      // Not fatal: the box keeps what it showed.
    }
  }, { signal: ctx.signal });
  return h('section', { class: 'panel', id: 'settings-desktop', testid: 'desktop-settings', 'aria-labelledby': 'desktop-title' },
    h('h2', { id: 'desktop-title' }, 'Desktop app'),
    box,
    result.el);
}

export function mount(root, route, ctx) {
  ctx.setTitle('Settings');
  const body = h('div', { class: 'settings-body' }, loading());
  const sectionLinks = [['receiver', 'Receiver'], ['webhooks', 'Webhooks'], ['studies', 'Study names'], ['compliance', 'Compliance'], ['notifications', 'Notifications'], ['data', 'Data']];
  // Shown once the settings say this dashboard runs inside the desktop app.
  const desktopLink = h('a', { href: links.settings('desktop'), hidden: true }, 'Desktop app');
  replace(root, h('section', { class: 'view view-narrow', testid: 'view-settings' },
    h('header', { class: 'view-head' }, h('div', null, h('h1', { tabindex: '-1' }, 'Settings'),
      h('nav', { class: 'section-links', 'aria-label': 'Settings sections' }, sectionLinks.map(([key, text]) => h('a', { href: links.settings(key) }, text)), desktopLink))),
    body));

  let section = route.query.get('section') || '';
  const scrollToSection = () => {
    const target = section && document.getElementById(`settings-${section}`);
    if (target) {
      target.scrollIntoView({ block: 'start' });
      const heading = target.querySelector('h2');
      if (heading) {
        heading.tabIndex = -1;
        heading.focus({ preventScroll: true });
      }
    }
  };

  let webhooksSlot = null;
  let studiesSlot = null;
  const reloadWebhooks = async (flash) => {
    const settings = await api.get('/api/settings', null, ctx.signal);
    if (webhooksSlot && ctx.alive()) replace(webhooksSlot, webhooksPanel(settings, ctx, reloadWebhooks, flash));
  };
  let complianceSlot = null;
  const complianceState = { study: route.query.get('study') || '', flash: null, redraw: () => {} };
  complianceState.redraw = () => {
    if (complianceSlot && ctx.alive()) replace(complianceSlot, compliancePanel(ctx, complianceState));
  };
  const reloadStudyNames = (flash) => {
    if (studiesSlot) replace(studiesSlot, studyNamesPanel(ctx, reloadStudyNames, flash));
    // A study named here can have its protocol and roster set at once.
    complianceState.redraw();
  };

  const load = async ({ keepResults = false } = {}) => {
    let settings;
    try {
      [settings] = await Promise.all([api.get('/api/settings', null, ctx.signal), ctx.reloadStudies()]);
    } catch (e) {
      if (e.name !== 'AbortError') replace(body, errorBox(e.message));
      return;
    }
    if (!ctx.alive() || keepResults) return;
    desktopLink.hidden = !settings.desktop;
    webhooksSlot = h('div', null, webhooksPanel(settings, ctx, reloadWebhooks));
    studiesSlot = h('div', null, studyNamesPanel(ctx, reloadStudyNames));
    complianceSlot = h('div', null, compliancePanel(ctx, complianceState));
    const [receiverPanel, prefsForm] = preferencesPanels(settings, ctx, load);
    replace(body, receiverPanel, settings.desktop ? desktopPanel(settings.desktop, ctx) : null, webhooksSlot, studiesSlot, complianceSlot, prefsForm,
      h('p', { class: 'muted small' }, 'Looking for how to connect CentrePoint? ', h('a', { href: links.setup() }, 'Open the setup guide'), '.'));
    scrollToSection();
  };
  load();
  return {
    // Live deliveries change nothing here; a form being filled in is never redrawn.
    update(next) {
      section = next.query.get('section') || '';
      scrollToSection();
    },
  };
}
