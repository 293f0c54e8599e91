// Notes: full-text search (?q=), tag and pinned filters, create, edit and delete with If-Match,
// pin and unpin. Live events from other devices update the list (or, while a search or filter
// is active, re-run it: only the server can tell whether a note matches). Everything is for the
// subject chosen in the header; a viewer reads without the write controls.
import { get, idempotencyKey, ifMatch, patch, post, query } from '../api.js';
import { alertBox, busy, field, fmtDateTime, h, onSubmit, replace, showProblem } from '../dom.js';
import { recordList } from '../records.js';
import { forCurrent } from '../subjects.js';
import { byLine, subjectLine } from './subjects.js';

const order = (a, b) =>
  a.pinned !== b.pinned
    ? a.pinned
      ? -1
      : 1
    : a.updated_at < b.updated_at
      ? 1
      : a.updated_at > b.updated_at
        ? -1
        : a.id < b.id
          ? 1
          : -1;
const parseTags = (s) => [
  ...new Set(
    s
      .split(/[\s,]+/)
      .map((t) => t.trim().toLowerCase())
      .filter(Boolean),
  ),
];

function noteFields(note = {}) {
  const title = field(
    'Title',
    h('input', { type: 'text', required: true, maxlength: 200, value: note.title || '' }),
    'title',
  );
  const body = field('Text', h('textarea', { rows: 4, maxlength: 100000 }), 'body');
  body.input.value = note.body || '';
  const tags = field(
    'Tags',
    h('input', { type: 'text', autocomplete: 'off', value: (note.tags || []).join(' '), spellcheck: 'false' }),
    'tags',
    'Separated by spaces or commas: letters, digits, - and _.',
  );
  const pinned = h('input', {
    type: 'checkbox',
    checked: !!note.pinned,
    id: `pin-${Math.random().toString(36).slice(2, 8)}`,
  });
  const pinnedRow = h('div', { class: 'field check' }, pinned, h('label', { for: pinned.id }, 'Pinned'));
  const values = () => ({
    title: title.input.value.trim(),
    body: body.input.value,
    tags: parseTags(tags.input.value),
    pinned: pinned.checked,
  });
  return { title, body, tags, pinned, pinnedRow, list: [title, body, tags], values };
}

export function notesPage(ctx) {
  const filters = { q: '', tag: '', pinned: false };
  const filtered = () => !!(filters.q || filters.tag || filters.pinned);
  const writable = ctx.subjects.canWrite;
  const subject = ctx.subjects.current;
  const tz = () => (subject && subject.timezone) || (ctx.user && ctx.user.timezone);

  // ---- create ----
  const nf = noteFields();
  const createAlert = alertBox();
  const createBtn = h('button', { type: 'submit', class: 'primary' }, 'Add note');
  const createForm = h(
    'form',
    {
      class: 'card note-form',
      novalidate: true,
      'aria-labelledby': 'new-note-h',
      onsubmit: onSubmit({
        alert: createAlert,
        fields: nf.list,
        button: createBtn,
        send: () =>
          post(
            '/notes',
            { ...nf.values(), subject_id: ctx.subjects.id },
            { headers: { 'Idempotency-Key': idempotencyKey() } },
          ),
        done: ({ data }) => {
          nf.title.input.value = '';
          nf.body.input.value = '';
          nf.tags.input.value = '';
          nf.pinned.checked = false;
          if (filtered()) reload();
          else records.upsert(data);
          tags.refresh();
        },
      }),
    },
    h('h2', { id: 'new-note-h' }, 'New note'),
    createAlert,
    nf.title.row,
    nf.body.row,
    nf.tags.row,
    nf.pinnedRow,
    createBtn,
  );

  // ---- search and filters ----
  const search = h('input', {
    type: 'search',
    id: 'note-search',
    placeholder: 'Search notes',
    autocomplete: 'off',
    enterkeyhint: 'search',
  });
  let searchTimer = null;
  search.addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      filters.q = search.value.trim();
      reload();
    }, 250);
  });
  const pinnedOnly = h('input', {
    type: 'checkbox',
    id: 'pinned-only',
    onchange: () => {
      filters.pinned = pinnedOnly.checked;
      reload();
    },
  });
  const tagBar = h('div', { class: 'tag-bar', role: 'group', 'aria-label': 'Filter by tag' });
  const tags = {
    timer: null,
    async load() {
      try {
        const { data } = await get(`/tags${query({ subject_id: ctx.subjects.id })}`);
        replace(
          tagBar,
          data.items.map((t) =>
            h(
              'button',
              {
                type: 'button',
                class: 'tag',
                'aria-pressed': String(filters.tag === t.tag),
                onclick: () => {
                  filters.tag = filters.tag === t.tag ? '' : t.tag;
                  tags.load();
                  reload();
                },
              },
              `#${t.tag}`,
              h('span', { class: 'count', 'aria-label': `${t.count} notes` }, String(t.count)),
            ),
          ),
        );
      } catch {
        /* the list shows the error */
      }
    },
    refresh() {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.load(), 300);
    },
  };

  // ---- list ----
  const records = recordList({
    path: '/notes',
    noun: 'note',
    listClass: 'notes-list',
    empty: () => (filtered() ? 'No notes match.' : 'No notes yet.'),
    order,
    label: (n) => `note ${n.title}`,
    itemClass: (n) => `item note${n.pinned ? ' pinned' : ''}`,
    view: (n) => [
      h('h3', { class: 'note-title' }, n.title, n.pinned ? h('span', { class: 'badge' }, 'pinned') : null),
      n.body ? h('p', { class: 'note-body' }, n.body.length > 400 ? `${n.body.slice(0, 400)}…` : n.body) : null,
      h(
        'p',
        { class: 'note-meta' },
        n.tags.map((t) => h('span', { class: 'tag static' }, `#${t}`)),
        h('time', { class: 'muted', datetime: n.updated_at }, fmtDateTime(n.updated_at, tz())),
      ),
      byLine(n, ctx),
    ],
    readOnly: !writable,
    actions: (n) =>
      h(
        'button',
        {
          type: 'button',
          class: 'secondary',
          'aria-pressed': String(!!n.pinned),
          'aria-label': `${n.pinned ? 'Unpin' : 'Pin'} note ${n.title}`,
          onclick: (e) => busy(e.currentTarget, () => save(n, { pinned: !n.pinned }, records.alert)),
        },
        n.pinned ? 'Unpin' : 'Pin',
      ),
    edit: startEdit,
    params: () => ({
      q: filters.q,
      tag: filters.tag,
      pinned: filters.pinned ? 'true' : '',
      subject_id: ctx.subjects.id,
    }),
    deleted: () => tags.refresh(),
  });
  const reload = records.reload;

  // PATCH with If-Match; a 412 reloads the note and says so.
  async function save(n, body, alert, fields = []) {
    const current = records.get(n.id) || n;
    try {
      const { data } = await patch(`/notes/${n.id}`, body, { headers: ifMatch(current), offline: current });
      if (filtered()) reload();
      else records.saved(data);
      tags.refresh();
      showProblem(alert, fields, null);
      return true;
    } catch (err) {
      if (err.status === 412) {
        err.problem.detail =
          'This note was changed on another device. The latest version is loaded; check it and save again.';
        await records.reloadItem(n.id);
      }
      if (err.status === 404) records.remove(n.id);
      showProblem(alert, fields, err);
      return false;
    }
  }

  function startEdit(n) {
    const f = noteFields(n);
    const alert = alertBox();
    const saveBtn = h('button', { type: 'submit', class: 'primary' }, 'Save');
    records.form(n, {
      alert,
      save: saveBtn,
      children: [f.title.row, f.body.row, f.tags.row, f.pinnedRow],
      focus: f.title.input,
      submit: async () => {
        const ok = await busy(saveBtn, () => save(n, f.values(), alert, f.list));
        if (!ok) {
          const fresh = records.get(n.id);
          if (fresh && fresh.version !== n.version) {
            n = fresh;
            f.title.input.value = fresh.title;
            f.body.input.value = fresh.body;
            f.tags.input.value = fresh.tags.join(' ');
            f.pinned.checked = fresh.pinned;
          }
        }
      },
    });
  }

  let reloadTimer = null;
  const off = ctx.live.on('event', (m) => {
    if (!m.event || !m.event.startsWith('note.') || !m.data || !forCurrent(m)) return;
    tags.refresh();
    if (m.event === 'note.deleted') {
      records.drop(m.data.id);
      return;
    }
    if (filtered()) {
      clearTimeout(reloadTimer);
      reloadTimer = setTimeout(reload, 200);
      return;
    }
    records.apply(m.data);
  });

  const el = h(
    'section',
    { class: 'notes-page' },
    h('div', { class: 'page-head' }, h('h1', null, 'Notes')),
    subjectLine(ctx),
    h(
      'div',
      { class: writable ? 'two-col notes-layout' : '' },
      writable ? h('div', null, createForm) : null,
      h(
        'section',
        { class: 'card', 'aria-labelledby': 'notes-h' },
        h('h2', { id: 'notes-h' }, 'Your notes'),
        h(
          'div',
          { class: 'search-row', role: 'search' },
          h('label', { for: 'note-search', class: 'visually-hidden' }, 'Search notes'),
          search,
          h('div', { class: 'field check' }, pinnedOnly, h('label', { for: 'pinned-only' }, 'Pinned only')),
        ),
        tagBar,
        records.nodes,
      ),
    ),
  );
  return {
    el,
    mounted() {
      records.loadMore();
      tags.load();
    },
    destroy() {
      off();
      clearTimeout(searchTimer);
      clearTimeout(reloadTimer);
      clearTimeout(tags.timer);
    },
  };
}
