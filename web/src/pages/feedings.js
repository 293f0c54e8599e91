// Feedings: a quick "log a feeding" form with big touch targets, today's progress, the list
// (edit and delete with If-Match, so a change made meanwhile elsewhere is never overwritten)
// and a 30-day chart, all for the subject chosen in the header; each feeding says who logged it.
// A viewer gets the list and the charts without the write controls. Changes from other devices
// and other members arrive as live events and are applied here.
import { get, idempotencyKey, ifMatch, patch, post, query } from '../api.js';
import { barChart } from '../charts.js';
import { alertBox, field, fmtDateTime, fmtNumber, h, onSubmit, replace, toLocalInput } from '../dom.js';
import { recordList } from '../records.js';
import { forCurrent } from '../subjects.js';
import { byLine, subjectLine } from './subjects.js';
import { todayCard } from './today.js';

const KINDS = ['milk', 'formula', 'water', 'food', 'medication', 'other'];
const PRESETS = [60, 90, 120, 150, 180, 240];
const LAST_KIND = 'pulse.last-kind';

const byGivenAt = (a, b) => (a.given_at < b.given_at ? 1 : a.given_at > b.given_at ? -1 : a.id < b.id ? 1 : -1);

export function feedingsPage(ctx) {
  const subject = ctx.subjects.current;
  const writable = ctx.subjects.canWrite;
  const tz = () => (subject && subject.timezone) || (ctx.user && ctx.user.timezone);
  const today = todayCard(ctx);

  // ---- quick log ----
  const amount = field(
    'Amount (ml)',
    h('input', {
      type: 'number',
      inputmode: 'numeric',
      min: 1,
      max: 2000,
      step: 1,
      required: true,
      value: '120',
      class: 'amount-input',
    }),
    'amount_ml',
  );
  const presetButtons = PRESETS.map((ml) =>
    h(
      'button',
      { type: 'button', class: 'preset', 'aria-pressed': ml === 120 ? 'true' : 'false', onclick: () => setAmount(ml) },
      `${ml}`,
    ),
  );
  const setAmount = (ml) => {
    amount.input.value = String(ml);
    syncPresets();
  };
  const syncPresets = () =>
    presetButtons.forEach((b, i) => b.setAttribute('aria-pressed', String(Number(amount.input.value) === PRESETS[i])));
  amount.input.addEventListener('input', syncPresets);
  let kind = localStorage.getItem(LAST_KIND) || 'milk';
  if (!KINDS.includes(kind)) kind = 'milk';
  const kindName = `kind-${Math.random().toString(36).slice(2, 7)}`;
  const kindRadios = KINDS.map((k) =>
    h(
      'label',
      { class: 'chip' },
      h('input', { type: 'radio', name: kindName, value: k, checked: k === kind, onchange: () => (kind = k) }),
      h('span', null, k),
    ),
  );
  const note = field('Note (optional)', h('input', { type: 'text', maxlength: 1000, autocomplete: 'off' }), 'note');
  const logAlert = alertBox();
  const logStatus = h('p', { class: 'notice', role: 'status', hidden: true });
  const logButton = h('button', { type: 'submit', class: 'primary big' }, 'Log feeding');
  const logForm = h(
    'form',
    {
      class: 'card quick-log',
      novalidate: true,
      'aria-labelledby': 'log-h',
      onsubmit: onSubmit({
        alert: logAlert,
        fields: [amount, note],
        button: logButton,
        status: logStatus,
        send: () => {
          const body = { amount_ml: Number(amount.input.value), kind, subject_id: ctx.subjects.id };
          if (!Number.isInteger(body.amount_ml)) body.amount_ml = amount.input.value; // let the API explain
          if (note.input.value.trim()) body.note = note.input.value.trim();
          return post('/feedings', body, { headers: { 'Idempotency-Key': idempotencyKey() } });
        },
        done: ({ data }) => {
          localStorage.setItem(LAST_KIND, kind);
          note.input.value = '';
          records.upsert(data);
          today.refresh();
          stats.refresh();
          logStatus.hidden = false;
          logStatus.textContent = `Logged ${data.amount_ml} ml of ${data.kind}.`;
        },
      }),
    },
    h('h2', { id: 'log-h' }, 'Log a feeding'),
    logAlert,
    h('div', { class: 'presets', role: 'group', 'aria-label': 'Common amounts (ml)' }, presetButtons),
    amount.row,
    h('fieldset', { class: 'kinds' }, h('legend', null, 'Kind'), kindRadios),
    note.row,
    logButton,
    logStatus,
  );

  // ---- list ----
  const records = recordList({
    path: '/feedings',
    noun: 'feeding',
    listClass: 'feedings-list',
    empty: 'No feedings yet.',
    order: byGivenAt,
    label: (f) => `${f.amount_ml} ml ${f.kind} at ${fmtDateTime(f.given_at, tz())}`,
    view: (f) => [
      h('span', { class: 'amount' }, `${fmtNumber(f.amount_ml)} ml`),
      h('span', { class: `kind kind-${f.kind}` }, f.kind),
      h('time', { datetime: f.given_at, class: 'muted' }, fmtDateTime(f.given_at, tz())),
      byLine(f, ctx),
      f.note ? h('p', { class: 'item-note' }, f.note) : null,
    ],
    readOnly: !writable,
    params: () => ({ subject_id: ctx.subjects.id }),
    edit: startEdit,
    deleted: () => {
      today.refresh();
      stats.refresh();
    },
  });

  function startEdit(f) {
    const a = field(
      'Amount (ml)',
      h('input', { type: 'number', min: 1, max: 2000, value: String(f.amount_ml), inputmode: 'numeric' }),
      'amount_ml',
    );
    const k = field(
      'Kind',
      h(
        'select',
        null,
        KINDS.map((x) => h('option', { value: x, selected: x === f.kind }, x)),
      ),
      'kind',
    );
    const at = field('Given at', h('input', { type: 'datetime-local', value: toLocalInput(f.given_at) }), 'given_at');
    const n = field('Note', h('input', { type: 'text', maxlength: 1000, value: f.note || '' }), 'note');
    const alert = alertBox();
    const save = h('button', { type: 'submit', class: 'primary' }, 'Save');
    records.form(f, {
      alert,
      save,
      children: h('div', { class: 'edit-grid' }, a.row, k.row, at.row, n.row),
      focus: a.input,
      submit: onSubmit({
        alert,
        fields: [a, k, at, n],
        button: save,
        send: () => {
          const current = records.get(f.id) || f;
          const body = { amount_ml: Number(a.input.value), kind: k.input.value, note: n.input.value.trim() || null };
          if (at.input.value && at.input.value !== toLocalInput(current.given_at))
            body.given_at = new Date(at.input.value).toISOString();
          return patch(`/feedings/${f.id}`, body, { headers: ifMatch(current) });
        },
        done: ({ data }) => {
          records.saved(data);
          today.refresh();
          stats.refresh();
        },
        messages: {
          412: 'This feeding was changed on another device. The latest version is shown; check it and save again.',
        },
        failed: async (err) => {
          if (err.status !== 412) return;
          await records.reloadItem(f.id);
          const fresh = records.get(f.id);
          if (fresh) {
            a.input.value = String(fresh.amount_ml);
            k.input.value = fresh.kind;
            at.input.value = toLocalInput(fresh.given_at);
            n.input.value = fresh.note || '';
          }
        },
      }),
    });
  }

  // ---- 30-day chart ----
  const chart = barChart({ title: 'Last 30 days (ml per day)', label: 'Total', fmt: (v) => `${fmtNumber(v)}` });
  const statsText = h('p', { class: 'muted stats-summary' });
  const stats = {
    timer: null,
    async load() {
      try {
        const { data: s } = await get(`/stats/feedings${query({ days: 30, subject_id: ctx.subjects.id })}`);
        chart.set(s.per_day.map((d) => ({ date: d.date, value: d.total_ml })));
        replace(
          statsText,
          `${fmtNumber(s.total_ml)} ml in ${fmtNumber(s.total_count)} feeding${s.total_count === 1 ? '' : 's'} · ${fmtNumber(s.avg_daily_ml, 1)} ml a day on average`,
        );
      } catch (err) {
        replace(statsText, h('span', { role: 'alert' }, err.message));
      }
    },
    refresh() {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.load(), 300);
    },
  };

  // ---- live events from other devices (and echoes of our own changes) ----
  const off = ctx.live.on('event', (m) => {
    if (!m.event || !m.event.startsWith('feeding.') || !m.data || !forCurrent(m)) return;
    if (m.event === 'feeding.deleted') records.drop(m.data.id);
    // A feeding older than what is loaded belongs to a later page: leave it to "Load more".
    else records.apply(m.data, (f, oldest) => f.given_at >= oldest.given_at);
    stats.refresh();
  });

  const el = h(
    'section',
    { class: 'feedings-page' },
    h('div', { class: 'page-head' }, h('h1', null, 'Feedings')),
    subjectLine(ctx),
    writable
      ? h('div', { class: 'two-col' }, h('div', null, logForm), h('div', null, today.el, chart.el, statsText))
      : h('div', { class: 'two-col' }, h('div', null, today.el), h('div', null, chart.el, statsText)),
    h('section', { class: 'card', 'aria-labelledby': 'list-h' }, h('h2', { id: 'list-h' }, 'Recent'), records.nodes),
  );
  return {
    el,
    mounted() {
      today.load();
      stats.load();
      records.loadMore();
    },
    destroy() {
      off();
      today.destroy();
      chart.destroy();
      clearTimeout(stats.timer);
    },
  };
}
