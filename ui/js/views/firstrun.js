// First run: how to expose the receiver, what to enter in the CentrePoint portal, and a
// test delivery through the real receiver path. Shown on the overview until the first
// delivery arrives, and at #/setup at any time.

import * as api from '../api.js';
import { h, replace } from '../dom.js';
import { errorBox, loading, outcome } from '../components.js';
import { relativeText, time } from '../format.js';
import { links } from '../route.js';

/** Where the public URL came from, in words. */
export function sourceText(source) {
  return {
    config: 'from the configuration',
    managed: 'from the tunnel cpwatch runs',
    ngrok: 'found from the ngrok agent',
    cloudflared: 'found from cloudflared',
  }[source] || source;
}

function port(listening) {
  const match = /:(\d+)$/.exec(String(listening || ''));
  return match ? match[1] : '8787';
}

function webhookPath(url) {
  try {
    return new URL(url).pathname || '/webhook';
  } catch {
    return '/webhook';
  }
}

/** The URL CentrePoint posts to, configured or found from a tunnel (the webhook path included). */
export function targetUrl(receiver) {
  return receiver.public_url ? receiver.public_url.url : null;
}

export function copyable(text, testid) {
  const result = h('span', { class: 'copy-result', 'aria-live': 'polite' });
  const button = h('button', {
    type: 'button',
    class: 'button button-small',
    onclick: async () => {
      try {
        await navigator.clipboard.writeText(text);
        result.textContent = 'Copied';
      } catch {
        result.textContent = 'Select the text and copy it';
      }
      setTimeout(() => { result.textContent = ''; }, 2500);
    },
  }, 'Copy');
  return h('div', { class: 'copyable' }, h('code', { class: 'command', testid }, text), button, result);
}

function testButtons(ctx, { onAccepted } = {}) {
  const result = outcome('test-delivery-result');
  const send = async (status, button) => {
    result.clear();
    button.disabled = true;
    try {
      const answer = await api.post('/api/test-delivery', { status });
      if (answer.accepted) {
        const text = `Test delivery accepted by the receiver (HTTP ${answer.status}, ${Math.round(answer.latency_ms)} ms, webhook ${answer.webhook_id}). It is upload ${answer.upload_id} in study "${answer.study_id}".`;
        result.ok(text);
        if (onAccepted) onAccepted(text);
      } else {
        result.fail(`The receiver refused the test delivery (HTTP ${answer.status}): ${answer.answer}`);
      }
    } catch (e) {
      result.fail(`Could not send the test delivery: ${e.message}`);
    } finally {
      button.disabled = false;
    }
  };
  const ok = h('button', { type: 'button', class: 'button button-primary', testid: 'test-delivery-button', onclick: (e) => send('completed', e.currentTarget) }, 'Send a test delivery');
  const failing = h('button', { type: 'button', class: 'button', testid: 'test-delivery-failed-button', onclick: (e) => send('error', e.currentTarget) }, 'Send a failing one');
  return h('div', null, h('div', { class: 'button-row' }, ok, failing), result.el);
}

/** The three steps. `data` is /api/overview. */
export function firstRunSteps(data, ctx, { onAccepted, standalone = false } = {}) {
  const receiver = data.receiver;
  const p = port(receiver.listening);
  const path = webhookPath(receiver.webhook_url);
  const target = targetUrl(receiver);
  const validation = data.totals.last_validation;
  return h('section', { class: 'first-run', testid: 'first-run', 'aria-labelledby': 'first-run-title' },
    standalone ? null : h('div', { class: 'first-run-intro' },
      h('h1', { id: 'first-run-title', tabindex: '-1' }, 'Connect CentrePoint to cpwatch'),
      h('p', { class: 'lead' }, 'No deliveries yet. Three steps, and uploads appear here as your subjects sync their devices.')),
    h('ol', { class: 'steps' },
      h('li', { class: 'step', testid: 'first-run-step' },
        h('h2', null, 'Expose the receiver'),
        h('p', null, 'CentrePoint only posts to public HTTPS addresses. Your receiver listens on ', h('code', null, receiver.listening),
          '. In a terminal, start a tunnel to it with either tool:'),
        h('div', { testid: 'tunnel-commands', class: 'commands' },
          h('p', { class: 'command-label' }, 'ngrok (prints an https://….ngrok-free.app address)'),
          copyable(`ngrok http ${p}`),
          h('p', { class: 'command-label' }, 'cloudflared (prints an https://….trycloudflare.com address)'),
          copyable(`cloudflared tunnel --url http://127.0.0.1:${p}`)),
        receiver.public_url
          ? h('p', null, 'Public URL: ', h('code', null, receiver.public_url.url), ` (${sourceText(receiver.public_url.source)}). `, h('a', { href: links.settings('receiver') }, 'Change it in Settings'), '.')
          : h('p', null, 'cpwatch finds the tunnel\'s address by itself (or let it run the tunnel: ', h('code', null, 'cpwatch serve --tunnel cloudflared'), '), and shows the exact target URL here. Another tunnel or proxy: enter its address in ', h('a', { href: links.settings('receiver') }, 'Settings'), '.')),
      h('li', { class: 'step', testid: 'first-run-step' },
        h('h2', null, 'Set up the webhook in the CentrePoint portal'),
        h('p', null, 'In your study\'s webhook settings in the CentrePoint portal:'),
        h('ul', { class: 'checklist' },
          h('li', null, 'Target URL: ', target ? copyable(target, 'target-url') : [h('code', { testid: 'target-url' }, `https://<your tunnel address>${path}`), h('span', { class: 'muted' }, ' (the public address plus ', h('code', null, path), ')')]),
          h('li', null, 'Authentication: choose a signing passcode (a long random secret), and enter the same passcode for that webhook id under ',
            h('a', { href: links.settings('webhooks') }, 'Settings → Webhooks'), '.'),
          h('li', null, 'Subscribe to the ', h('strong', null, 'upload'), ' event (and any others you want to follow).'),
          h('li', null, 'Press ', h('strong', null, 'Validate'), '. cpwatch answers the handshake by itself.')),
        validation
          ? h('p', { class: ['outcome', validation.auth_ok ? 'outcome-ok' : 'outcome-error'] }, `Validation received from webhook ${validation.webhook_id ?? '?'} `, time(validation.received_at, { relative: true }), validation.auth_ok ? '.' : ', but its credentials did not match: check the passcode.')
          : h('p', { class: 'muted' }, 'Once you validate, the handshake shows up under ', h('a', { href: links.deliveries({ event: 'validation' }) }, 'Deliveries'), '.')),
      h('li', { class: 'step', testid: 'first-run-step' },
        h('h2', null, 'Send a test delivery'),
        h('p', null, 'This sends a test upload to your own receiver, through the same path CentrePoint uses (with your webhook\'s authentication), so you see it arrive here.'),
        testButtons(ctx, { onAccepted }))));
}

/** #/setup: the same steps, on their own page. */
export function mount(root, route, ctx) {
  ctx.setTitle('Setup');
  const body = h('div', null, loading());
  replace(root, h('section', { class: 'view', testid: 'view-first-run' },
    h('header', { class: 'view-head' },
      h('div', null,
        h('h1', { tabindex: '-1' }, 'Setup'),
        h('p', { class: 'subtitle' }, 'How to connect a CentrePoint webhook to this receiver.'))),
    body));
  let steps = null;
  const load = async () => {
    try {
      const data = await api.get('/api/overview', null, ctx.signal);
      if (!ctx.alive()) return;
      // Rendered once: the test result and copied commands stay put while deliveries arrive.
      if (!steps) {
        steps = firstRunSteps(data, ctx, { standalone: true, onAccepted: () => {} });
        replace(body, steps, h('p', { class: 'muted' }, data.totals.deliveries ? `${data.totals.deliveries} deliveries received so far, the last one ${relativeText(data.totals.last_delivery_at)}. ` : '', h('a', { href: links.overview() }, 'Back to the overview')));
      }
    } catch (e) {
      if (e.name !== 'AbortError') replace(body, errorBox(e.message));
    }
  };
  load();
  return {};
}
