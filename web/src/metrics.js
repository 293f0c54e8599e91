// The last two minutes of `metrics` messages, kept while the app runs so that the dashboard
// shows history at once when you come back to it.
const CAPACITY = 120;

function seconds(ts) {
  if (typeof ts === 'number') return ts > 1e12 ? ts / 1000 : ts;
  const t = Date.parse(ts);
  return Number.isFinite(t) ? t / 1000 : Date.now() / 1000;
}

export const metricsHistory = {
  samples: [],
  listeners: new Set(),
  listen(live) {
    live.on('metrics', (m) => {
      const sample = { t: seconds(m.ts), system: m.system || {}, server: m.server || {} };
      this.samples.push(sample);
      if (this.samples.length > CAPACITY) this.samples.shift();
      for (const fn of this.listeners) fn(sample);
    });
  },
  subscribe(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  },
  clear() {
    this.samples = [];
  },
};
