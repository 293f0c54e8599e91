// The live dashboard: today's feeding progress, then CPU, memory, network and request-rate
// charts fed by the `metrics` messages of /api/v1/live (one per second), with the latest
// figures as tiles.
import { liveChart } from '../charts.js';
import { fmtBytes, fmtNumber, h, replace } from '../dom.js';
import { metricsHistory } from '../metrics.js';
import { todayCard } from './today.js';

const pct = (v) => `${fmtNumber(v, 0)}%`;
const perSecond = (v) => `${fmtBytes(v)}/s`;

export function dashboardPage(ctx) {
  const today = todayCard(ctx, { compact: true });
  const cpu = liveChart({ title: 'CPU', series: [{ label: 'all cores', color: 'teal' }], fmt: pct, yMax: 100 });
  const mem = liveChart({ title: 'Memory', series: [{ label: 'used', color: 'purple' }], fmt: fmtBytes });
  const net = liveChart({
    title: 'Network',
    series: [
      { label: 'in', color: 'blue' },
      { label: 'out', color: 'orange' },
    ],
    fmt: perSecond,
  });
  const req = liveChart({
    title: 'Requests',
    series: [
      { label: 'per second', color: 'teal' },
      { label: 'errors', color: 'red' },
    ],
    fmt: (v) => fmtNumber(v, v < 10 ? 1 : 0),
  });
  const charts = [cpu, mem, net, req];

  const tile = (label) => {
    const value = h('span', { class: 'tile-value' }, '–');
    return { el: h('div', { class: 'tile' }, h('span', { class: 'tile-label' }, label), value), value };
  };
  const tiles = {
    load: tile('Load (1 min)'),
    mem: tile('Memory'),
    disk: tile('Disk'),
    latency: tile('Latency p50 / p95 / p99'),
    conns: tile('Connections / live clients'),
    db: tile('Database pool busy'),
  };
  const waiting = h('p', { class: 'muted waiting', role: 'status' }, 'Waiting for live metrics…');

  const apply = (s, redraw = true) => {
    const sys = s.system;
    const srv = s.server;
    if (redraw) {
      cpu.push(s.t, [sys.cpu_percent]);
      mem.push(s.t, [sys.mem_used_bytes]);
      net.push(s.t, [sys.net_rx_bytes_per_s, sys.net_tx_bytes_per_s]);
      req.push(s.t, [srv.requests_per_s, srv.errors_per_s]);
    }
    replace(tiles.load.value, fmtNumber(sys.load1, 2));
    replace(tiles.mem.value, `${fmtBytes(sys.mem_used_bytes)} of ${fmtBytes(sys.mem_total_bytes)}`);
    replace(tiles.disk.value, `${fmtBytes(sys.disk_used_bytes)} of ${fmtBytes(sys.disk_total_bytes)}`);
    replace(
      tiles.latency.value,
      `${fmtNumber(srv.p50_ms, 1)} / ${fmtNumber(srv.p95_ms, 1)} / ${fmtNumber(srv.p99_ms, 1)} ms`,
    );
    replace(tiles.conns.value, `${fmtNumber(srv.connections)} / ${fmtNumber(srv.ws_clients)}`);
    replace(tiles.db.value, `${fmtNumber(srv.db_pool_busy)} of ${fmtNumber(srv.db_pool_size)}`);
    waiting.hidden = true;
  };

  const el = h(
    'section',
    { class: 'dashboard' },
    h('div', { class: 'page-head' }, h('h1', null, 'Live')),
    today.el,
    waiting,
    h(
      'div',
      { class: 'tiles' },
      Object.values(tiles).map((t) => t.el),
    ),
    h(
      'div',
      { class: 'charts' },
      charts.map((c) => c.el),
    ),
  );

  let off = null;
  return {
    el,
    mounted() {
      for (const s of metricsHistory.samples) {
        cpu.push(s.t, [s.system.cpu_percent]);
        mem.push(s.t, [s.system.mem_used_bytes]);
        net.push(s.t, [s.system.net_rx_bytes_per_s, s.system.net_tx_bytes_per_s]);
        req.push(s.t, [s.server.requests_per_s, s.server.errors_per_s]);
      }
      const last = metricsHistory.samples[metricsHistory.samples.length - 1];
      if (last) apply(last, false);
      off = metricsHistory.subscribe((s) => apply(s));
      today.load();
    },
    destroy() {
      if (off) off();
      today.destroy();
      charts.forEach((c) => c.destroy());
    },
  };
}
