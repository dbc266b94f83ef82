// The overview's 30-day chart: uploads per day, stacked by status, as inline SVG.

import { h, s } from './dom.js';
import { count, dayText } from './format.js';

const ORDER = [
  ['completed', 'Completed'],
  ['error', 'Failed'],
  ['started', 'Started'],
];

const WIDTH = 300;
const HEIGHT = 64;
const SLOT = WIDTH / 30;
const BAR = SLOT * 0.72;

/** `days`: [{ day: 'YYYY-MM-DD', started, completed, error }], oldest first. */
export function dayChart(days, { testid = 'study-chart' } = {}) {
  const totals = days.map((d) => ORDER.reduce((sum, [key]) => sum + (d[key] || 0), 0));
  const max = Math.max(1, ...totals);
  const sums = Object.fromEntries(ORDER.map(([key]) => [key, days.reduce((sum, d) => sum + (d[key] || 0), 0)]));
  if (!totals.some(Boolean)) {
    return h('p', { class: 'chart-empty muted', testid }, `No uploads in the last ${days.length} days.`);
  }
  const label = `Uploads per day over the last ${days.length} days: ${ORDER.map(([key, name]) => `${count(sums[key])} ${name.toLowerCase()}`).join(', ')}`;

  const slots = days.map((d, i) => {
    const x = i * SLOT + (SLOT - BAR) / 2;
    let y = HEIGHT;
    const rects = [];
    for (const [key] of ORDER) {
      const n = d[key] || 0;
      if (!n) continue;
      const height = Math.max(1.5, (n / max) * (HEIGHT - 4));
      y -= height;
      rects.push(s('rect', { class: `bar bar-${key}`, x: x.toFixed(2), y: y.toFixed(2), width: BAR.toFixed(2), height: height.toFixed(2) }));
    }
    const tip = `${dayText(d.day, { long: true })}: ${totals[i] ? ORDER.map(([key, name]) => `${count(d[key] || 0)} ${name.toLowerCase()}`).join(', ') : 'no uploads'}`;
    return s('g', { class: 'slot' },
      s('title', null, tip),
      s('rect', { class: 'hit', x: (i * SLOT).toFixed(2), y: 0, width: SLOT.toFixed(2), height: HEIGHT }),
      rects.length ? rects : s('rect', { class: 'bar bar-none', x: x.toFixed(2), y: HEIGHT - 1, width: BAR.toFixed(2), height: 1 }));
  });

  const svg = s('svg', {
    class: 'chart-svg', viewBox: `0 0 ${WIDTH} ${HEIGHT}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': label,
  }, slots);

  return h('figure', { class: 'chart', testid },
    h('div', { class: 'chart-scale', 'aria-hidden': 'true' }, `${count(max)} / day`),
    svg,
    h('div', { class: 'chart-axis', 'aria-hidden': 'true' },
      h('span', null, days.length ? dayText(days[0].day) : ''),
      h('span', null, 'Today')),
    h('figcaption', { class: 'legend' },
      ORDER.map(([key, name]) => h('span', { class: 'legend-item' }, h('span', { class: `swatch swatch-${key}`, 'aria-hidden': 'true' }), `${name} ${count(sums[key])}`))));
}
