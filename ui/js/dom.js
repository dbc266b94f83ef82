// Building the page without HTML strings: every value ends up as a text node or an
// attribute set one by one, so nothing that came from a delivery can become markup.

const PROPERTIES = new Set(['value', 'checked', 'disabled', 'selected', 'hidden', 'open', 'readOnly', 'required']);
const SVG_NS = 'http://www.w3.org/2000/svg';

function apply(el, props) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.setAttribute('class', Array.isArray(value) ? value.filter(Boolean).join(' ') : value);
    else if (key === 'testid') el.dataset.testid = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key === 'text') el.textContent = String(value);
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (PROPERTIES.has(key)) el[key] = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
}

/** Appends children: nodes as they are, strings and numbers as text, arrays flattened. */
export function append(el, ...children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** An HTML element: h('a', { href, class }, 'text', otherNode). */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  apply(el, props);
  return append(el, ...children);
}

/** An SVG element, built with createElementNS. */
export function s(tag, props, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  apply(el, props);
  return append(el, ...children);
}

/** Replaces an element's content in one step (no flash of an empty element). */
export function replace(el, ...children) {
  const fragment = document.createDocumentFragment();
  append(fragment, ...children);
  el.replaceChildren(fragment);
  return el;
}

/** A region whose <details> stay open (and scroll stays put) across re-renders. */
function openKeys(root) {
  return new Set([...root.querySelectorAll('details[data-key][open]')].map((d) => d.dataset.key));
}

function reopen(root, keys) {
  for (const d of root.querySelectorAll('details[data-key]')) {
    if (keys.has(d.dataset.key)) d.open = true;
  }
}

/**
 * Whether a live refresh brought anything new: an unchanged answer is not redrawn, so a
 * selection or a hover survives. Each tracker remembers the last answer it saw.
 */
export function changeTracker() {
  let last = null;
  return (data) => {
    const text = JSON.stringify(data);
    if (text === last) return false;
    last = text;
    return true;
  };
}

/** Re-renders `el` with `build()` keeping open <details>, and focus when the focused element has an id. */
export function rerender(el, build) {
  const keys = openKeys(el);
  const active = document.activeElement;
  const focusId = active && el.contains(active) ? active.id || active.dataset.focusKey : null;
  replace(el, build());
  reopen(el, keys);
  if (focusId) {
    const again = el.querySelector(`[id="${CSS.escape(focusId)}"], [data-focus-key="${CSS.escape(focusId)}"]`);
    if (again) again.focus({ preventScroll: true });
  }
}
