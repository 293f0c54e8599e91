// DOM helpers. Every element is built with h(): text goes in as text nodes, never as HTML, so
// what users typed (note bodies, names) cannot inject markup, and no inline style attribute is
// ever written (the CSP has no 'unsafe-inline').

// h('button', { class: 'x', onclick: fn, 'aria-label': '...' }, 'text', child, [more])
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value' || k === 'checked' || k === 'selected') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

export function replace(el, ...children) {
  clear(el);
  append(el, children);
  return el;
}

let uid = 0;
export const newId = (prefix) => `${prefix}-${++uid}`;

// A labelled form field with a slot for its validation message:
// field('Amount (ml)', h('input', {...}), 'amount') -> { row, input, error }
export function field(label, input, name, hint) {
  const id = input.id || newId(name || 'f');
  input.id = id;
  if (name) input.name = name;
  const errId = `${id}-error`;
  const error = h('p', { class: 'field-error', id: errId, hidden: true });
  const hintEl = hint ? h('p', { class: 'hint', id: `${id}-hint` }, hint) : null;
  input.setAttribute('aria-describedby', [hintEl ? `${id}-hint` : null, errId].filter(Boolean).join(' '));
  const row = h('div', { class: 'field' }, h('label', { for: id }, label), input, hintEl, error);
  return { row, input, error, name };
}

// Shows a problem+json error: `detail` in the form's alert, `errors[]` next to their fields.
export function showProblem(alertEl, fields, err) {
  for (const f of fields) {
    f.error.hidden = true;
    f.error.textContent = '';
    f.input.removeAttribute('aria-invalid');
  }
  if (!err) {
    alertEl.hidden = true;
    alertEl.textContent = '';
    return;
  }
  const problem = err.problem || {};
  const unplaced = [];
  for (const e of problem.errors || []) {
    const f = fields.find((x) => x.name === e.field);
    if (f) {
      f.error.hidden = false;
      f.error.textContent = e.message;
      f.input.setAttribute('aria-invalid', 'true');
    } else {
      unplaced.push(`${e.field}: ${e.message}`);
    }
  }
  const text = [problem.detail || err.message, ...unplaced].filter(Boolean).join(' — ');
  alertEl.hidden = !text;
  alertEl.textContent = text;
  const firstBad = fields.find((f) => !f.error.hidden);
  if (firstBad) firstBad.input.focus();
}

export function alertBox() {
  return h('p', { class: 'alert', role: 'alert', hidden: true });
}

// Runs an async action with its button disabled, reporting failures to `report`.
export async function busy(button, fn) {
  if (button) button.disabled = true;
  try {
    return await fn();
  } finally {
    if (button) button.disabled = false;
  }
}

// The submit handler of every form: no page reload; the previous errors cleared and `status`
// (a confirmation line) hidden; `check()` may refuse before any request by returning an error
// shaped like an ApiError ({ problem: { detail } }); `send()` runs with `button` disabled and
// its result goes to `done`. On failure, `messages[err.status]` replaces the problem's detail,
// `failed(err)` may react (reload a changed record, ...), and the problem is shown: `detail`
// in `alert`, each `errors[]` entry under its field.
//   onsubmit: onSubmit({ alert, fields, button, send: () => post('/notes', body), done: ({ data }) => ... })
export function onSubmit({ alert, fields = [], button, status, check, send, done, failed, messages = {} }) {
  return async (e) => {
    if (e) e.preventDefault();
    showProblem(alert, fields, null);
    if (status) status.hidden = true;
    const refused = check ? check() : null;
    if (refused) {
      showProblem(alert, fields, refused);
      return;
    }
    try {
      const result = await busy(button, send);
      if (done) await done(result);
    } catch (err) {
      if (err.problem && messages[err.status]) err.problem.detail = messages[err.status];
      if (failed) await failed(err);
      showProblem(alert, fields, err);
    }
  };
}

// ---- formatting ----

export function fmtBytes(n) {
  if (!Number.isFinite(n)) return '–';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(n >= 100 || i === 0 ? 0 : 1)} ${units[i]}`;
}

export function fmtNumber(n, digits = 0) {
  if (!Number.isFinite(n)) return '–';
  return n.toLocaleString(undefined, { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

export function fmtTime(iso, timeZone) {
  if (!iso) return '–';
  try {
    return new Intl.DateTimeFormat(undefined, { timeZone, hour: '2-digit', minute: '2-digit' }).format(new Date(iso));
  } catch {
    return new Date(iso).toLocaleTimeString();
  }
}

export function fmtDateTime(iso, timeZone) {
  if (!iso) return '–';
  const opts = { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' };
  try {
    return new Intl.DateTimeFormat(undefined, { ...opts, timeZone }).format(new Date(iso));
  } catch {
    return new Date(iso).toLocaleString(undefined, opts);
  }
}

// "2026-11-23T09:30" for <input type=datetime-local>, in the browser's zone.
export function toLocalInput(iso) {
  const d = new Date(iso);
  const pad = (x) => String(x).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}
