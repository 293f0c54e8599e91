// uPlot wrappers: a rolling time series for the live metrics and a bar chart for the 30-day
// feeding stats. uPlot draws on canvas and positions its elements through the CSSOM
// (element.style), which a CSP without 'unsafe-inline' allows; its stylesheet is bundled.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { h } from './dom.js';

// Named so that the canvas (hex) and the stylesheet (.c-<name> classes) agree.
export const COLORS = { teal: '#0f766e', orange: '#c2410c', blue: '#2563eb', purple: '#9333ea', red: '#dc2626' };
const ORDER = ['teal', 'orange', 'blue', 'purple'];

const pad2 = (n) => String(n).padStart(2, '0');
function clock(seconds) {
  const d = new Date(seconds * 1000);
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

function axisColor() {
  return getComputedStyle(document.body).color || '#333';
}

function gridColor() {
  return matchMedia('(prefers-color-scheme: dark)').matches ? 'rgba(255,255,255,0.08)' : 'rgba(0,0,0,0.07)';
}

function widthOf(el) {
  return Math.max(240, Math.floor(el.clientWidth || el.getBoundingClientRect().width || 300));
}

function observeWidth(wrap, plot, height) {
  if (typeof ResizeObserver === 'undefined') return null;
  let last = 0;
  const ro = new ResizeObserver(() => {
    const w = widthOf(wrap);
    if (w !== last) {
      last = w;
      plot.setSize({ width: w, height });
    }
  });
  ro.observe(wrap);
  return ro;
}

// A chart of the last `capacity` samples, spanning at least `windowS` seconds, with
// the latest value of each series in its caption. series: [{ label, color: 'teal' | ... }].
// Returns { el, push(tsSeconds, [values]), points, destroy() }.
export function liveChart({
  title,
  series,
  fmt = (v) => v,
  height = 160,
  capacity = 120,
  windowS = 10,
  yMin = 0,
  yMax,
}) {
  const wrap = h('div', { class: 'chart', dataset: { points: '0' } });
  const colors = series.map((sr, i) => sr.color || ORDER[i % ORDER.length]);
  const latest = series.map(() => h('span', { class: 'key-value' }, '–'));
  const caption = h(
    'figcaption',
    null,
    h('span', { class: 'chart-title' }, title),
    h(
      'span',
      { class: 'chart-keys' },
      series.map((sr, i) => h('span', { class: `key c-${colors[i]}` }, `${sr.label} `, latest[i])),
    ),
  );
  const figure = h('figure', { class: 'card chart-card' }, caption, wrap);
  const data = [[], ...series.map(() => [])];
  let plot = null;
  let ro = null;
  const opts = () => ({
    width: widthOf(wrap),
    height,
    cursor: { drag: { x: false, y: false } },
    legend: { show: false },
    scales: {
      x: { time: true, range: (u, min, max) => [Math.min(min, max - windowS), max] },
      y: { range: (u, min, max) => [yMin, yMax !== undefined ? yMax : Math.max(max * 1.15, yMin + 1)] },
    },
    axes: [
      {
        stroke: axisColor(),
        grid: { stroke: gridColor() },
        ticks: { show: false },
        space: 70,
        incrs: [5, 10, 15, 30, 60, 120, 300],
        values: (u, splits) => splits.map(clock),
      },
      {
        stroke: axisColor(),
        grid: { stroke: gridColor() },
        ticks: { show: false },
        size: 60,
        values: (u, vals) => vals.map((v) => fmt(v)),
      },
    ],
    series: [
      {},
      ...series.map((sr, i) => ({ label: sr.label, stroke: COLORS[colors[i]], width: 2, points: { show: false } })),
    ],
  });
  const mount = () => {
    if (plot || !wrap.isConnected) return;
    plot = new uPlot(opts(), data, wrap);
    ro = observeWidth(wrap, plot, height);
  };
  return {
    el: figure,
    get points() {
      return data[0].length;
    },
    push(ts, values) {
      data[0].push(ts);
      values.forEach((v, i) => {
        const ok = Number.isFinite(v);
        data[i + 1].push(ok ? v : null);
        latest[i].textContent = ok ? fmt(v) : '–';
      });
      if (data[0].length > capacity) for (const col of data) col.shift();
      wrap.dataset.points = String(data[0].length);
      mount();
      if (plot) plot.setData(data);
    },
    mount,
    destroy() {
      if (ro) ro.disconnect();
      if (plot) plot.destroy();
      plot = null;
    },
  };
}

// Bars of one value per day: days = [{ date: 'YYYY-MM-DD', value }].
export function barChart({ title, label, fmt = (v) => v, height = 180, color = COLORS.teal }) {
  const wrap = h('div', { class: 'chart', dataset: { points: '0' } });
  const figure = h('figure', { class: 'card chart-card' }, h('figcaption', null, title), wrap);
  let plot = null;
  let ro = null;
  const bars = uPlot.paths.bars({ size: [0.7, 40], align: 0 });
  return {
    el: figure,
    set(days) {
      const xs = days.map((d) => Date.parse(`${d.date}T12:00:00Z`) / 1000);
      const ys = days.map((d) => d.value);
      wrap.dataset.points = String(xs.length);
      if (plot) {
        plot.setData([xs, ys]);
        return;
      }
      if (!wrap.isConnected) return;
      plot = new uPlot(
        {
          width: widthOf(wrap),
          height,
          cursor: { drag: { x: false, y: false } },
          legend: { show: false },
          scales: {
            // half a day of room on each side, so the first and last bars are whole
            x: { time: true, range: (u, min, max) => [min - 43200, max + 43200] },
            y: { range: (u, min, max) => [0, Math.max(max * 1.15, 10)] },
          },
          axes: [
            { stroke: axisColor(), grid: { show: false }, ticks: { show: false } },
            {
              stroke: axisColor(),
              grid: { stroke: gridColor() },
              ticks: { show: false },
              size: 52,
              values: (u, vals) => vals.map((v) => fmt(v)),
            },
          ],
          series: [
            { value: (u, v) => (v ? new Date(v * 1000).toISOString().slice(0, 10) : '–') },
            {
              label,
              stroke: color,
              fill: `${color}cc`,
              width: 0,
              paths: bars,
              points: { show: false },
              value: (u, v) => (v === null ? '–' : fmt(v)),
            },
          ],
        },
        [xs, ys],
        wrap,
      );
      ro = observeWidth(wrap, plot, height);
    },
    destroy() {
      if (ro) ro.disconnect();
      if (plot) plot.destroy();
      plot = null;
    },
  };
}

// Hours since local midnight in `timeZone` (wall clock, 0..24) of an ISO instant.
export function hourOfDay(iso, timeZone) {
  const d = new Date(iso);
  let parts;
  try {
    parts = new Intl.DateTimeFormat('en-GB', {
      timeZone,
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
      hourCycle: 'h23',
    }).formatToParts(d);
  } catch {
    return d.getHours() + d.getMinutes() / 60 + d.getSeconds() / 3600;
  }
  const n = (t) => Number((parts.find((p) => p.type === t) || { value: 0 }).value);
  return n('hour') + n('minute') / 60 + n('second') / 3600;
}

// A day's feedings on a 24-hour axis (the subject's wall clock): amounts as bars (left axis,
// in the user's unit) and timed feeds without an amount as bars of minutes (right axis).
// points = [{ hour, amount, minutes }] (amount or minutes null).
export function dayChart({ title, unit, height = 190 }) {
  const wrap = h('div', { class: 'day-chart', dataset: { points: '0' } });
  const caption = h(
    'figcaption',
    null,
    h('span', { class: 'chart-title' }, title),
    h(
      'span',
      { class: 'chart-keys' },
      h('span', { class: 'key c-teal' }, `Amount (${unit})`),
      ' ',
      h('span', { class: 'key c-orange' }, 'Breast (min)'),
    ),
  );
  const figure = h('figure', { class: 'card chart-card' }, caption, wrap);
  let plot = null;
  let ro = null;
  const bars = uPlot.paths.bars({ size: [1, 8, 6], align: 0 }); // 6..8 px wide, however close
  const pad2h = (x) => `${String(Math.floor(x)).padStart(2, '0')}:00`;
  const axis = (scale, side) => ({
    scale,
    side,
    stroke: axisColor(),
    grid: side === 3 ? { stroke: gridColor() } : { show: false },
    ticks: { show: false },
    size: 44,
  });
  return {
    el: figure,
    set(points) {
      const sorted = [...points].sort((a, b) => a.hour - b.hour);
      const data = [
        sorted.map((p) => p.hour),
        sorted.map((p) => (p.amount === null ? null : p.amount)),
        sorted.map((p) => (p.minutes === null ? null : p.minutes)),
      ];
      wrap.dataset.points = String(sorted.length);
      if (plot) {
        plot.setData(data);
        return;
      }
      if (!wrap.isConnected) return;
      plot = new uPlot(
        {
          width: widthOf(wrap),
          height,
          cursor: { drag: { x: false, y: false } },
          legend: { show: false },
          scales: {
            x: { time: false, range: () => [0, 24] },
            v: { range: (u, min, max) => [0, Math.max((max || 0) * 1.15, unit === 'oz' ? 4 : 120)] },
            min: { range: (u, min, max) => [0, Math.max((max || 0) * 1.15, 30)] },
          },
          axes: [
            {
              stroke: axisColor(),
              grid: { stroke: gridColor() },
              ticks: { show: false },
              incrs: [3, 6],
              values: (u, splits) => splits.map(pad2h),
            },
            axis('v', 3),
            axis('min', 1),
          ],
          series: [
            {},
            {
              label: `Amount (${unit})`,
              scale: 'v',
              stroke: COLORS.teal,
              fill: `${COLORS.teal}cc`,
              width: 0,
              paths: bars,
              points: { show: false },
            },
            {
              label: 'Breast (min)',
              scale: 'min',
              stroke: COLORS.orange,
              fill: `${COLORS.orange}aa`,
              width: 0,
              paths: bars,
              points: { show: false },
            },
          ],
        },
        data,
        wrap,
      );
      ro = observeWidth(wrap, plot, height);
    },
    destroy() {
      if (ro) ro.disconnect();
      if (plot) plot.destroy();
      plot = null;
    },
  };
}
