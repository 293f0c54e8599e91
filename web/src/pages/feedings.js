// Feedings: a quick "log a feeding" form with big touch targets, today's progress, the list
// (edit and delete with If-Match, so a change made meanwhile elsewhere is never overwritten)
// and a 30-day chart. Changes from other devices arrive as live events and are applied here.
import { del, get, idempotencyKey, ifMatch, patch, post, query } from '../api.js';
import { barChart } from '../charts.js';
import { alertBox, busy, field, fmtDateTime, fmtNumber, h, replace, showProblem, toLocalInput } from '../dom.js';
import { todayCard } from './today.js';

const KINDS = ['milk', 'formula', 'water', 'food', 'medication', 'other'];
const PRESETS = [60, 90, 120, 150, 180, 240];
const PAGE = 20;
const LAST_KIND = 'pulse.last-kind';

const byGivenAt = (a, b) => (a.given_at < b.given_at ? 1 : a.given_at > b.given_at ? -1 : a.id < b.id ? 1 : -1);

export function feedingsPage(ctx) {
  const tz = () => ctx.user && ctx.user.timezone;
  const today = todayCard(ctx);
  const items = new Map();
  let cursor = null;
  let loadedAll = false;
  const editing = new Map(); // id -> form element being edited
  const confirming = new Set();

  // ---- quick log ----
  const amount = field('Amount (ml)', h('input', { type: 'number', inputmode: 'numeric', min: 1, max: 2000, step: 1, required: true, value: '120', class: 'amount-input' }), 'amount_ml');
  const presetButtons = PRESETS.map((ml) =>
    h('button', { type: 'button', class: 'preset', 'aria-pressed': ml === 120 ? 'true' : 'false', onclick: () => setAmount(ml) }, `${ml}`),
  );
  const setAmount = (ml) => {
    amount.input.value = String(ml);
    syncPresets();
  };
  const syncPresets = () => presetButtons.forEach((b, i) => b.setAttribute('aria-pressed', String(Number(amount.input.value) === PRESETS[i])));
  amount.input.addEventListener('input', syncPresets);
  let kind = localStorage.getItem(LAST_KIND) || 'milk';
  if (!KINDS.includes(kind)) kind = 'milk';
  const kindName = `kind-${Math.random().toString(36).slice(2, 7)}`;
  const kindRadios = KINDS.map((k) =>
    h('label', { class: 'chip' }, h('input', { type: 'radio', name: kindName, value: k, checked: k === kind, onchange: () => (kind = k) }), h('span', null, k)),
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
      onsubmit: async (e) => {
        e.preventDefault();
        showProblem(logAlert, [amount, note], null);
        logStatus.hidden = true;
        const body = { amount_ml: Number(amount.input.value), kind };
        if (!Number.isInteger(body.amount_ml)) body.amount_ml = amount.input.value; // let the API explain
        if (note.input.value.trim()) body.note = note.input.value.trim();
        try {
          const { data } = await busy(logButton, () => post('/feedings', body, { headers: { 'Idempotency-Key': idempotencyKey() } }));
          localStorage.setItem(LAST_KIND, kind);
          note.input.value = '';
          upsert(data);
          today.refresh();
          stats.refresh();
          logStatus.hidden = false;
          logStatus.textContent = `Logged ${data.amount_ml} ml of ${data.kind}.`;
        } catch (err) {
          showProblem(logAlert, [amount, note], err);
        }
      },
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
  const list = h('ul', { class: 'items feedings-list', 'aria-live': 'polite' });
  const listAlert = alertBox();
  const more = h('button', { type: 'button', class: 'secondary', hidden: true, onclick: () => busy(more, loadMore) }, 'Load more');
  const empty = h('p', { class: 'muted', hidden: true }, 'No feedings yet.');

  function upsert(f) {
    items.set(f.id, f);
    renderList();
  }

  function remove(id) {
    items.delete(id);
    editing.delete(id);
    confirming.delete(id);
    renderList();
  }

  function renderList() {
    let sorted = [...items.values()].sort(byGivenAt);
    replace(list, sorted.map(itemView));
    empty.hidden = sorted.length > 0;
    more.hidden = loadedAll;
  }

  function itemView(f) {
    if (editing.has(f.id)) return h('li', { class: 'item editing', dataset: { id: f.id } }, editing.get(f.id));
    const label = `${f.amount_ml} ml ${f.kind} at ${fmtDateTime(f.given_at, tz())}`;
    const actions = confirming.has(f.id)
      ? [
          h('span', { class: 'confirm-text' }, 'Delete?'),
          h('button', { type: 'button', class: 'danger', 'aria-label': `Confirm deleting ${label}`, onclick: (e) => busy(e.currentTarget, () => doDelete(f)) }, 'Delete'),
          h('button', { type: 'button', class: 'secondary', onclick: () => { confirming.delete(f.id); renderList(); } }, 'Keep'),
        ]
      : [
          h('button', { type: 'button', class: 'secondary', 'aria-label': `Edit ${label}`, onclick: () => startEdit(f) }, 'Edit'),
          h('button', { type: 'button', class: 'secondary', 'aria-label': `Delete ${label}`, onclick: () => { confirming.add(f.id); renderList(); } }, 'Delete'),
        ];
    return h(
      'li',
      { class: 'item', dataset: { id: f.id } },
      h(
        'div',
        { class: 'item-main' },
        h('span', { class: 'amount' }, `${fmtNumber(f.amount_ml)} ml`),
        h('span', { class: `kind kind-${f.kind}` }, f.kind),
        h('time', { datetime: f.given_at, class: 'muted' }, fmtDateTime(f.given_at, tz())),
        f.note ? h('p', { class: 'item-note' }, f.note) : null,
      ),
      h('div', { class: 'item-actions' }, actions),
    );
  }

  function startEdit(f) {
    const a = field('Amount (ml)', h('input', { type: 'number', min: 1, max: 2000, value: String(f.amount_ml), inputmode: 'numeric' }), 'amount_ml');
    const k = field('Kind', h('select', null, KINDS.map((x) => h('option', { value: x, selected: x === f.kind }, x))), 'kind');
    const at = field('Given at', h('input', { type: 'datetime-local', value: toLocalInput(f.given_at) }), 'given_at');
    const n = field('Note', h('input', { type: 'text', maxlength: 1000, value: f.note || '' }), 'note');
    const alert = alertBox();
    const save = h('button', { type: 'submit', class: 'primary' }, 'Save');
    const form = h(
      'form',
      {
        class: 'edit-form',
        novalidate: true,
        onsubmit: async (e) => {
          e.preventDefault();
          showProblem(alert, [a, k, at, n], null);
          const current = items.get(f.id) || f;
          const body = { amount_ml: Number(a.input.value), kind: k.input.value, note: n.input.value.trim() || null };
          if (at.input.value && at.input.value !== toLocalInput(current.given_at)) body.given_at = new Date(at.input.value).toISOString();
          try {
            const { data } = await busy(save, () => patch(`/feedings/${f.id}`, body, { headers: ifMatch(current) }));
            editing.delete(f.id);
            upsert(data);
            today.refresh();
            stats.refresh();
          } catch (err) {
            if (err.status === 412) {
              err.problem.detail = 'This feeding was changed on another device. The latest version is shown; check it and save again.';
              await reloadItem(f.id);
              const fresh = items.get(f.id);
              if (fresh) {
                a.input.value = String(fresh.amount_ml);
                k.input.value = fresh.kind;
                at.input.value = toLocalInput(fresh.given_at);
                n.input.value = fresh.note || '';
              }
            }
            showProblem(alert, [a, k, at, n], err);
          }
        },
        onkeydown: (e) => {
          if (e.key === 'Escape') cancel();
        },
      },
      alert,
      h('div', { class: 'edit-grid' }, a.row, k.row, at.row, n.row),
      h('div', { class: 'row' }, save, h('button', { type: 'button', class: 'secondary', onclick: () => cancel() }, 'Cancel')),
    );
    const cancel = () => {
      editing.delete(f.id);
      renderList();
    };
    editing.set(f.id, form);
    renderList();
    a.input.focus();
  }

  async function reloadItem(id) {
    try {
      const { data } = await get(`/feedings/${id}`);
      items.set(id, data);
    } catch (e) {
      if (e.status === 404) items.delete(id);
    }
  }

  async function doDelete(f) {
    try {
      await del(`/feedings/${f.id}`, { headers: ifMatch(items.get(f.id) || f) });
      remove(f.id);
      today.refresh();
      stats.refresh();
    } catch (err) {
      if (err.status === 404) {
        remove(f.id);
        return;
      }
      if (err.status === 412) {
        await reloadItem(f.id);
        confirming.delete(f.id);
        renderList();
        err.problem.detail = 'This feeding was changed on another device; check it before deleting.';
      }
      showProblem(listAlert, [], err);
    }
  }

  async function loadMore() {
    try {
      const { data } = await get(`/feedings${query({ limit: PAGE, cursor })}`);
      for (const f of data.items) items.set(f.id, f);
      cursor = data.next_cursor;
      loadedAll = !cursor;
      showProblem(listAlert, [], null);
      renderList();
    } catch (err) {
      showProblem(listAlert, [], err);
    }
  }

  // ---- 30-day chart ----
  const chart = barChart({ title: 'Last 30 days (ml per day)', label: 'Total', fmt: (v) => `${fmtNumber(v)}` });
  const statsText = h('p', { class: 'muted stats-summary' });
  const stats = {
    timer: null,
    async load() {
      try {
        const { data: s } = await get('/stats/feedings?days=30');
        chart.set(s.per_day.map((d) => ({ date: d.date, value: d.total_ml })));
        replace(statsText, `${fmtNumber(s.total_ml)} ml in ${fmtNumber(s.total_count)} feeding${s.total_count === 1 ? '' : 's'} · ${fmtNumber(s.avg_daily_ml, 1)} ml a day on average`);
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
    if (!m.event || !m.event.startsWith('feeding.') || !m.data) return;
    if (m.event === 'feeding.deleted') {
      if (items.has(m.data.id)) remove(m.data.id);
    } else {
      const f = m.data;
      const known = items.get(f.id);
      if (known && known.version >= f.version) return;
      // A feeding older than what is loaded belongs to a later page: leave it to "Load more".
      const sorted = [...items.values()].sort(byGivenAt);
      const oldest = sorted[sorted.length - 1];
      if (known || loadedAll || !oldest || f.given_at >= oldest.given_at) {
        if (known && editing.has(f.id)) items.set(f.id, f); // the form keeps its own values
        else upsert(f);
      }
    }
    stats.refresh();
  });

  const el = h(
    'section',
    { class: 'feedings-page' },
    h('div', { class: 'page-head' }, h('h1', null, 'Feedings')),
    h('div', { class: 'two-col' }, h('div', null, logForm), h('div', null, today.el, chart.el, statsText)),
    h('section', { class: 'card', 'aria-labelledby': 'list-h' }, h('h2', { id: 'list-h' }, 'Recent'), listAlert, empty, list, more),
  );
  return {
    el,
    mounted() {
      today.load();
      stats.load();
      loadMore();
    },
    destroy() {
      off();
      today.destroy();
      chart.destroy();
      clearTimeout(stats.timer);
    },
  };
}
