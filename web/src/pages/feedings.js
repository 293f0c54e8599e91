// Feedings: a quick "log a feeding" form with big touch targets, today's progress, the list
// (edit and delete with If-Match, so a change made meanwhile elsewhere is never overwritten)
// and a 30-day chart, all for the subject chosen in the header; each feeding says who logged it.
// A viewer gets the list and the charts without the write controls. Changes from other devices
// and other members arrive as live events and are applied here.
import { get, idempotencyKey, ifMatch, patch, post, query } from '../api.js';
import { barChart, dayChart, hourOfDay } from '../charts.js';
import { alertBox, busy, field, fmtDateTime, fmtNumber, fmtTime, h, onSubmit, replace, toLocalInput } from '../dom.js';
import { MAX_S, clearTimer, elapsed, onTimerChange, readTimer, startTimer, timerFeeding } from '../feedtimer.js';
import { recordList } from '../records.js';
import { forCurrent } from '../subjects.js';
import { clock, fmtDuration, fmtVolume, inputAttrs, parseVolume, toInput, unitOf } from '../units.js';
import { byLine, subjectLine } from './subjects.js';
import { todayCard } from './today.js';

const KINDS = ['milk', 'breast_milk', 'fortified_breast_milk', 'formula', 'water', 'food', 'medication', 'other'];
const METHODS = ['bottle', 'breast_left', 'breast_right', 'breast_both', 'parent_fed', 'self_fed', 'tube'];
export const METHOD_NAMES = {
  bottle: 'Bottle',
  breast_left: 'Left breast',
  breast_right: 'Right breast',
  breast_both: 'Both breasts',
  parent_fed: 'Parent fed',
  self_fed: 'Self fed',
  tube: 'Tube',
};
const BREAST = new Set(['breast_left', 'breast_right', 'breast_both']);
const PRESETS = { ml: [60, 90, 120, 150, 180, 240], oz: [2, 3, 4, 5, 6, 8] };
const LAST_KIND = 'pulse.last-kind';
const LAST_BOTTLE = 'pulse.last-bottle'; // + subject id: the last amount logged (ml)
const kindName = (k) => k.replace(/_/g, ' ');

const byGivenAt = (a, b) => (a.given_at < b.given_at ? 1 : a.given_at > b.given_at ? -1 : a.id < b.id ? 1 : -1);

export function feedingsPage(ctx) {
  const subject = ctx.subjects.current;
  const writable = ctx.subjects.canWrite;
  const tz = () => (subject && subject.timezone) || (ctx.user && ctx.user.timezone);
  const today = todayCard(ctx);

  // ---- quick log ----
  const unit = unitOf(ctx.user);
  const sid = ctx.subjects.id;
  const presets = PRESETS[unit];
  const amount = field(
    `Amount (${unit})`,
    h('input', { type: 'number', ...inputAttrs(unit), value: String(presets[2]), class: 'amount-input' }),
    'amount_ml',
    'Optional for breastfeeds.',
  );
  const presetButtons = presets.map((v) =>
    h(
      'button',
      {
        type: 'button',
        class: 'preset',
        'aria-pressed': v === presets[2] ? 'true' : 'false',
        onclick: () => setAmount(v),
      },
      `${v}`,
    ),
  );
  const setAmount = (v) => {
    amount.input.value = String(v);
    syncPresets();
  };
  const syncPresets = () =>
    presetButtons.forEach((b, i) => b.setAttribute('aria-pressed', String(Number(amount.input.value) === presets[i])));
  amount.input.addEventListener('input', syncPresets);
  const method = field(
    'Method',
    h(
      'select',
      null,
      h('option', { value: '' }, '—'),
      METHODS.map((m) => h('option', { value: m }, METHOD_NAMES[m])),
    ),
    'method',
  );
  let kind = localStorage.getItem(LAST_KIND) || 'milk';
  if (!KINDS.includes(kind)) kind = 'milk';
  const kindGroup = `kind-${Math.random().toString(36).slice(2, 7)}`;
  const kindRadios = KINDS.map((k) =>
    h(
      'label',
      { class: 'chip' },
      h('input', { type: 'radio', name: kindGroup, value: k, checked: k === kind, onchange: () => (kind = k) }),
      h('span', null, kindName(k)),
    ),
  );
  const note = field('Note (optional)', h('input', { type: 'text', maxlength: 1000, autocomplete: 'off' }), 'note');
  const logAlert = alertBox();
  const logStatus = h('p', { class: 'notice', role: 'status', hidden: true });
  const logButton = h('button', { type: 'submit', class: 'primary big' }, 'Log feeding');
  // The amount typed, in the user's unit: { ml } (null when empty and optional) or a refusal.
  const readAmount = (input, m) => {
    if (input.value.trim() === '' && BREAST.has(m)) return { ml: null };
    return parseVolume(input.value, unit);
  };
  const refuse = (f, message) => ({ problem: { errors: [{ field: f.name, message }] } });
  const logged = (data) => {
    if (data.amount_ml !== null && data.amount_ml !== undefined)
      localStorage.setItem(`${LAST_BOTTLE}.${sid}`, String(data.amount_ml));
    records.upsert(data);
    today.refresh();
    stats.refresh();
    timeline.refresh();
    refreshBottle();
    logStatus.hidden = false;
    const what = [
      data.method ? METHOD_NAMES[data.method] : null,
      data.amount_ml !== null && data.amount_ml !== undefined ? fmtVolume(data.amount_ml, unit) : null,
      data.duration_s ? fmtDuration(data.duration_s) : null,
    ].filter(Boolean);
    logStatus.textContent = `Logged ${what.join(', ')} of ${kindName(data.kind)}.`;
  };
  const logForm = h(
    'form',
    {
      class: 'card quick-log',
      novalidate: true,
      'aria-labelledby': 'log-h',
      onsubmit: onSubmit({
        alert: logAlert,
        fields: [amount, method, note],
        button: logButton,
        status: logStatus,
        check: () => {
          const a = readAmount(amount.input, method.input.value);
          return a.error ? refuse(amount, a.error) : null;
        },
        send: () => {
          const m = method.input.value;
          const body = { kind, subject_id: ctx.subjects.id };
          const a = readAmount(amount.input, m);
          if (a.ml !== null) body.amount_ml = a.ml;
          if (m) body.method = m;
          if (note.input.value.trim()) body.note = note.input.value.trim();
          return post('/feedings', body, { headers: { 'Idempotency-Key': idempotencyKey() } });
        },
        done: ({ data }) => {
          localStorage.setItem(LAST_KIND, kind);
          note.input.value = '';
          logged(data);
        },
      }),
    },
    h('h2', { id: 'log-h' }, 'Log a feeding'),
    logAlert,
    h('div', { class: 'presets', role: 'group', 'aria-label': `Common amounts (${unit})` }, presetButtons),
    amount.row,
    method.row,
    h('fieldset', { class: 'kinds' }, h('legend', null, 'Kind'), kindRadios),
    note.row,
    logButton,
    logStatus,
  );

  // ---- one-tap buttons and the breastfeeding timer ----
  const quickAlert = alertBox();
  const bottleBtn = h('button', { type: 'button', class: 'quick bottle' });
  const lastBottle = () => {
    const ml = Number(localStorage.getItem(`${LAST_BOTTLE}.${sid}`));
    return Number.isInteger(ml) && ml >= 1 && ml <= 2000 ? ml : null;
  };
  const refreshBottle = () => {
    const ml = lastBottle() || (unit === 'oz' ? parseVolume('4', 'oz').ml : 120);
    bottleBtn.textContent = `Bottle · ${fmtVolume(ml, unit)}`;
    bottleBtn.dataset.ml = String(ml);
    bottleBtn.setAttribute('aria-label', `Log a bottle of ${fmtVolume(ml, unit)}`);
  };
  bottleBtn.addEventListener('click', () =>
    busy(bottleBtn, async () => {
      showQuick(null);
      try {
        // the kind last chosen in the form (a bottle of expressed milk is breast_milk)
        const body = { method: 'bottle', amount_ml: Number(bottleBtn.dataset.ml), kind, subject_id: sid };
        const { data } = await post('/feedings', body, { headers: { 'Idempotency-Key': idempotencyKey() } });
        logged(data);
      } catch (err) {
        showQuick(err);
      }
    }),
  );
  const showQuick = (err) => {
    quickAlert.hidden = !err;
    quickAlert.textContent = err ? err.message : '';
  };
  const startBtn = (m) =>
    h(
      'button',
      {
        type: 'button',
        class: `quick ${m}`,
        'aria-label': `Start ${METHOD_NAMES[m].toLowerCase()} timer`,
        onclick: () => {
          startTimer(sid, m);
          showTimer();
        },
      },
      METHOD_NAMES[m],
    );
  const idle = h('div', { class: 'quick-buttons' }, startBtn('breast_left'), startBtn('breast_right'), bottleBtn);
  const timerSide = h('span', { class: 'timer-side' });
  const timerClock = h('span', { class: 'timer-clock', role: 'timer', 'aria-live': 'off' });
  const timerSince = h('span', { class: 'muted timer-since' });
  const stopBtn = h(
    'button',
    { type: 'button', class: 'primary big', onclick: () => busy(stopBtn, stop) },
    'Stop and log',
  );
  const cancelBtn = h(
    'button',
    {
      type: 'button',
      class: 'secondary',
      onclick: () => {
        clearTimer(sid);
        showTimer();
      },
    },
    'Discard',
  );
  const running = h(
    'div',
    { class: 'timer-running', hidden: true },
    h('p', { class: 'timer-line' }, timerSide, ' ', timerClock, ' ', timerSince),
    h('div', { class: 'row' }, stopBtn, cancelBtn),
  );
  let tick = null;
  function showTimer() {
    const t = readTimer(sid);
    clearInterval(tick);
    idle.hidden = !!t;
    running.hidden = !t;
    if (!t) return;
    timerSide.textContent = METHOD_NAMES[t.method] || t.method;
    const draw = () => {
      const s = elapsed(t);
      timerClock.textContent = clock(s);
      // the API keeps at most 6 h: a forgotten timer is logged as 6 h (edit it afterwards)
      timerSince.textContent = `since ${fmtTime(t.start, tz())}${s > MAX_S ? ' · over 6 h: logged as 6 h' : ''}`;
      timerClock.dataset.seconds = String(Math.floor(s));
    };
    draw();
    tick = setInterval(draw, 1000);
  }
  async function stop() {
    const t = readTimer(sid);
    if (!t) return showTimer();
    showQuick(null);
    try {
      const body = timerFeeding(t, sid);
      const { data } = await post('/feedings', body, { headers: { 'Idempotency-Key': idempotencyKey() } });
      clearTimer(sid);
      showTimer();
      logged(data);
    } catch (err) {
      showQuick(err);
    }
  }
  const offTimer = onTimerChange(sid, showTimer);
  refreshBottle();
  const quickCard = h(
    'section',
    { class: 'card quick-card', 'aria-labelledby': 'quick-h' },
    h('h2', { id: 'quick-h' }, 'Quick log'),
    quickAlert,
    idle,
    running,
  );

  // ---- a day's timeline ----
  const timeline = (() => {
    const chart = dayChart({ title: '24 hours', unit });
    const date = h('input', { type: 'date', 'aria-label': 'Day', class: 'timeline-date' });
    const summary = h('p', { class: 'muted timeline-summary' });
    const figures = h('dl', { class: 'interval-figures' });
    let seq = 0;
    let timer = null;
    const load = async () => {
      const mine = ++seq;
      try {
        const { data } = await get(`/feedings/timeline${query({ subject_id: ctx.subjects.id, date: date.value })}`);
        if (mine !== seq) return;
        if (!date.value) date.value = data.date;
        chart.set(
          data.items.map((f) => ({
            hour: hourOfDay(f.given_at, data.timezone),
            amount: f.amount_ml === null || f.amount_ml === undefined ? null : Number(toInput(f.amount_ml, unit)),
            minutes: (f.amount_ml === null || f.amount_ml === undefined) && f.duration_s ? f.duration_s / 60 : null,
          })),
        );
        const total = data.items.reduce((n, f) => n + (f.amount_ml || 0), 0);
        replace(
          summary,
          `${data.items.length} feeding${data.items.length === 1 ? '' : 's'} on ${data.date} · ${fmtVolume(total, unit)}`,
        );
      } catch (err) {
        if (mine === seq) replace(summary, h('span', { role: 'alert' }, err.message));
      }
    };
    date.addEventListener('change', load);
    const el = h(
      'section',
      { class: 'timeline', 'aria-labelledby': 'timeline-h' },
      h('div', { class: 'card-head' }, h('h2', { id: 'timeline-h' }, 'Timeline'), date),
      chart.el,
      summary,
      figures,
    );
    return {
      el,
      load,
      figures,
      refresh() {
        clearTimeout(timer);
        timer = setTimeout(load, 300);
      },
      destroy() {
        seq++;
        clearTimeout(timer);
        chart.destroy();
      },
    };
  })();

  // ---- list ----
  const has = (v) => v !== null && v !== undefined;
  const what = (f) =>
    [has(f.amount_ml) ? fmtVolume(f.amount_ml, unit) : null, f.method ? METHOD_NAMES[f.method] || f.method : null]
      .filter(Boolean)
      .join(' ');
  const records = recordList({
    path: '/feedings',
    noun: 'feeding',
    listClass: 'feedings-list',
    empty: 'No feedings yet.',
    order: byGivenAt,
    label: (f) => `${what(f)} ${kindName(f.kind)} at ${fmtDateTime(f.given_at, tz())}`,
    view: (f) => [
      has(f.amount_ml) ? h('span', { class: 'amount' }, fmtVolume(f.amount_ml, unit)) : null,
      f.method ? h('span', { class: `method method-${f.method}` }, METHOD_NAMES[f.method] || f.method) : null,
      f.duration_s ? h('span', { class: 'duration' }, fmtDuration(f.duration_s)) : null,
      h('span', { class: `kind kind-${f.kind}` }, kindName(f.kind)),
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
      timeline.refresh();
    },
  });

  function startEdit(f) {
    const a = field(
      `Amount (${unit})`,
      h('input', { type: 'number', ...inputAttrs(unit), value: toInput(f.amount_ml, unit) }),
      'amount_ml',
    );
    const m = field(
      'Method',
      h(
        'select',
        null,
        h('option', { value: '', selected: !f.method }, '—'),
        METHODS.map((x) => h('option', { value: x, selected: x === f.method }, METHOD_NAMES[x])),
      ),
      'method',
    );
    const d = field(
      'Duration (min)',
      h('input', {
        type: 'number',
        min: 0,
        max: 360,
        step: 'any',
        inputmode: 'decimal',
        value: has(f.duration_s) ? String(Math.round((f.duration_s / 60) * 10) / 10) : '',
      }),
      'duration_s',
    );
    const k = field(
      'Kind',
      h(
        'select',
        null,
        KINDS.map((x) => h('option', { value: x, selected: x === f.kind }, kindName(x))),
      ),
      'kind',
    );
    const at = field('Given at', h('input', { type: 'datetime-local', value: toLocalInput(f.given_at) }), 'given_at');
    const n = field('Note', h('input', { type: 'text', maxlength: 1000, value: f.note || '' }), 'note');
    const alert = alertBox();
    const save = h('button', { type: 'submit', class: 'primary' }, 'Save');
    const fill = (x) => {
      a.input.value = toInput(x.amount_ml, unit);
      m.input.value = x.method || '';
      d.input.value = has(x.duration_s) ? String(Math.round((x.duration_s / 60) * 10) / 10) : '';
      k.input.value = x.kind;
      at.input.value = toLocalInput(x.given_at);
      n.input.value = x.note || '';
    };
    records.form(f, {
      alert,
      save,
      children: h('div', { class: 'edit-grid' }, a.row, m.row, d.row, k.row, at.row, n.row),
      focus: a.input,
      submit: onSubmit({
        alert,
        fields: [a, m, d, k, at, n],
        button: save,
        check: () => {
          const r = readAmount(a.input, m.input.value);
          return r.error ? refuse(a, r.error) : null;
        },
        send: () => {
          const current = records.get(f.id) || f;
          const body = {
            amount_ml: readAmount(a.input, m.input.value).ml,
            kind: k.input.value,
            note: n.input.value.trim() || null,
          };
          // v1 feedings stay v1: method and duration only when set or changed
          if (m.input.value || current.method) body.method = m.input.value || null;
          const mins = d.input.value.trim();
          const dur = mins === '' ? null : Math.round(Number(mins) * 60);
          if (dur !== (has(current.duration_s) ? current.duration_s : null))
            body.duration_s = Number.isFinite(dur) || dur === null ? dur : mins;
          if (at.input.value && at.input.value !== toLocalInput(current.given_at))
            body.given_at = new Date(at.input.value).toISOString();
          return patch(`/feedings/${f.id}`, body, { headers: ifMatch(current), offline: current });
        },
        done: ({ data }) => {
          records.saved(data);
          today.refresh();
          stats.refresh();
          timeline.refresh();
        },
        messages: {
          412: 'This feeding was changed on another device. The latest version is shown; check it and save again.',
        },
        failed: async (err) => {
          if (err.status !== 412) return;
          await records.reloadItem(f.id);
          const fresh = records.get(f.id);
          if (fresh) fill(fresh);
        },
      }),
    });
  }

  // ---- 30-day chart and the interval figures ----
  const chart = barChart({
    title: `Last 30 days (${unit} per day)`,
    label: 'Total',
    fmt: (v) => `${fmtNumber(v, unit === 'oz' ? 1 : 0)}`,
  });
  const statsText = h('p', { class: 'muted stats-summary' });
  const figure = (label, s) => [h('dt', null, label), h('dd', null, fmtDuration(s, { seconds: false }))];
  const stats = {
    timer: null,
    async load() {
      try {
        const { data: s } = await get(`/stats/feedings${query({ days: 30, subject_id: ctx.subjects.id })}`);
        chart.set(s.per_day.map((d) => ({ date: d.date, value: Number(toInput(d.total_ml, unit)) })));
        const parts = [
          `${fmtVolume(s.total_ml, unit)} in ${fmtNumber(s.total_count)} feeding${s.total_count === 1 ? '' : 's'}`,
          `${unit === 'oz' ? fmtVolume(Math.round(s.avg_daily_ml), unit) : `${fmtNumber(s.avg_daily_ml, 1)} ml`} a day on average`,
        ];
        const met = s.per_day.filter((d) => d.target_met).length;
        if (s.per_day.some((d) => d.target_met !== undefined) && met > 0) parts.push(`target met on ${met} days`);
        if (Array.isArray(s.by_method) && s.by_method.length)
          parts.push(
            s.by_method
              .map((b) => `${b.method ? METHOD_NAMES[b.method] || b.method : 'no method'} ${b.count}`)
              .join(', '),
          );
        replace(statsText, parts.join(' · '));
        const iv = s.intervals;
        if (iv)
          replace(
            timeline.figures,
            figure('Since last feed', iv.since_last_s),
            figure('Average gap (30 days)', iv.avg_gap_s),
            figure('Longest gap (30 days)', iv.longest_gap_s),
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
    timeline.refresh();
  });

  const el = h(
    'section',
    { class: 'feedings-page' },
    h('div', { class: 'page-head' }, h('h1', null, 'Feedings')),
    subjectLine(ctx),
    writable ? quickCard : null,
    writable
      ? h('div', { class: 'two-col' }, h('div', null, logForm), h('div', null, today.el, timeline.el))
      : h('div', { class: 'two-col' }, h('div', null, today.el), h('div', null, timeline.el)),
    h('div', { class: 'month' }, chart.el, statsText),
    h('section', { class: 'card', 'aria-labelledby': 'list-h' }, h('h2', { id: 'list-h' }, 'Recent'), records.nodes),
  );
  return {
    el,
    mounted() {
      today.load();
      stats.load();
      timeline.load();
      records.loadMore();
      if (writable) showTimer();
    },
    destroy() {
      off();
      offTimer();
      clearInterval(tick);
      today.destroy();
      chart.destroy();
      timeline.destroy();
      clearTimeout(stats.timer);
    },
  };
}
