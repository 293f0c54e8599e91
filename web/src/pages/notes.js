// Notes: full-text search (?q=), tag and pinned filters, create, edit and delete with If-Match,
// pin and unpin. Live events from other devices update the list (or, while a search or filter
// is active, re-run it: only the server can tell whether a note matches).
import { del, get, idempotencyKey, ifMatch, patch, post, query } from '../api.js';
import { alertBox, busy, field, fmtDateTime, h, replace, showProblem } from '../dom.js';

const PAGE = 20;
const order = (a, b) => (a.pinned !== b.pinned ? (a.pinned ? -1 : 1) : a.updated_at < b.updated_at ? 1 : a.updated_at > b.updated_at ? -1 : a.id < b.id ? 1 : -1);
const parseTags = (s) => [...new Set(s.split(/[\s,]+/).map((t) => t.trim().toLowerCase()).filter(Boolean))];

function noteFields(note = {}) {
  const title = field('Title', h('input', { type: 'text', required: true, maxlength: 200, value: note.title || '' }), 'title');
  const body = field('Text', h('textarea', { rows: 4, maxlength: 100000 }), 'body');
  body.input.value = note.body || '';
  const tags = field('Tags', h('input', { type: 'text', autocomplete: 'off', value: (note.tags || []).join(' '), spellcheck: 'false' }), 'tags', 'Separated by spaces or commas: letters, digits, - and _.');
  const pinned = h('input', { type: 'checkbox', checked: !!note.pinned, id: `pin-${Math.random().toString(36).slice(2, 8)}` });
  const pinnedRow = h('div', { class: 'field check' }, pinned, h('label', { for: pinned.id }, 'Pinned'));
  const values = () => ({ title: title.input.value.trim(), body: body.input.value, tags: parseTags(tags.input.value), pinned: pinned.checked });
  return { title, body, tags, pinned, pinnedRow, list: [title, body, tags], values };
}

export function notesPage(ctx) {
  const items = new Map();
  const editing = new Map();
  const confirming = new Set();
  let cursor = null;
  let loadedAll = false;
  const filters = { q: '', tag: '', pinned: false };
  const filtered = () => !!(filters.q || filters.tag || filters.pinned);

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
      onsubmit: async (e) => {
        e.preventDefault();
        showProblem(createAlert, nf.list, null);
        try {
          const { data } = await busy(createBtn, () => post('/notes', nf.values(), { headers: { 'Idempotency-Key': idempotencyKey() } }));
          nf.title.input.value = '';
          nf.body.input.value = '';
          nf.tags.input.value = '';
          nf.pinned.checked = false;
          if (filtered()) reload();
          else upsert(data);
          tags.refresh();
        } catch (err) {
          showProblem(createAlert, nf.list, err);
        }
      },
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
  const search = h('input', { type: 'search', id: 'note-search', placeholder: 'Search notes', autocomplete: 'off', enterkeyhint: 'search' });
  let searchTimer = null;
  search.addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      filters.q = search.value.trim();
      reload();
    }, 250);
  });
  const pinnedOnly = h('input', { type: 'checkbox', id: 'pinned-only', onchange: () => { filters.pinned = pinnedOnly.checked; reload(); } });
  const tagBar = h('div', { class: 'tag-bar', role: 'group', 'aria-label': 'Filter by tag' });
  const tags = {
    timer: null,
    async load() {
      try {
        const { data } = await get('/tags');
        replace(
          tagBar,
          data.items.map((t) =>
            h('button', {
              type: 'button',
              class: 'tag',
              'aria-pressed': String(filters.tag === t.tag),
              onclick: () => {
                filters.tag = filters.tag === t.tag ? '' : t.tag;
                tags.load();
                reload();
              },
            }, `#${t.tag}`, h('span', { class: 'count', 'aria-label': `${t.count} notes` }, String(t.count))),
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
  const list = h('ul', { class: 'items notes-list', 'aria-live': 'polite' });
  const listAlert = alertBox();
  const empty = h('p', { class: 'muted', hidden: true }, 'No notes.');
  const more = h('button', { type: 'button', class: 'secondary', hidden: true, onclick: () => busy(more, loadMore) }, 'Load more');

  function upsert(n) {
    items.set(n.id, n);
    renderList();
  }
  function remove(id) {
    items.delete(id);
    editing.delete(id);
    confirming.delete(id);
    renderList();
  }
  function renderList() {
    const sorted = [...items.values()].sort(order);
    replace(list, sorted.map(itemView));
    empty.hidden = sorted.length > 0;
    empty.textContent = filtered() ? 'No notes match.' : 'No notes yet.';
    more.hidden = loadedAll;
  }

  function itemView(n) {
    if (editing.has(n.id)) return h('li', { class: 'item editing', dataset: { id: n.id } }, editing.get(n.id));
    const actions = confirming.has(n.id)
      ? [
          h('span', { class: 'confirm-text' }, 'Delete?'),
          h('button', { type: 'button', class: 'danger', 'aria-label': `Confirm deleting note ${n.title}`, onclick: (e) => busy(e.currentTarget, () => doDelete(n)) }, 'Delete'),
          h('button', { type: 'button', class: 'secondary', onclick: () => { confirming.delete(n.id); renderList(); } }, 'Keep'),
        ]
      : [
          h('button', { type: 'button', class: 'secondary', 'aria-pressed': String(!!n.pinned), 'aria-label': `${n.pinned ? 'Unpin' : 'Pin'} note ${n.title}`, onclick: (e) => busy(e.currentTarget, () => save(n, { pinned: !n.pinned }, listAlert)) }, n.pinned ? 'Unpin' : 'Pin'),
          h('button', { type: 'button', class: 'secondary', 'aria-label': `Edit note ${n.title}`, onclick: () => startEdit(n) }, 'Edit'),
          h('button', { type: 'button', class: 'secondary', 'aria-label': `Delete note ${n.title}`, onclick: () => { confirming.add(n.id); renderList(); } }, 'Delete'),
        ];
    return h(
      'li',
      { class: `item note${n.pinned ? ' pinned' : ''}`, dataset: { id: n.id } },
      h(
        'div',
        { class: 'item-main' },
        h('h3', { class: 'note-title' }, n.title, n.pinned ? h('span', { class: 'badge' }, 'pinned') : null),
        n.body ? h('p', { class: 'note-body' }, n.body.length > 400 ? `${n.body.slice(0, 400)}…` : n.body) : null,
        h('p', { class: 'note-meta' }, n.tags.map((t) => h('span', { class: 'tag static' }, `#${t}`)), h('time', { class: 'muted', datetime: n.updated_at }, fmtDateTime(n.updated_at, ctx.user && ctx.user.timezone))),
      ),
      h('div', { class: 'item-actions' }, actions),
    );
  }

  // PATCH with If-Match; a 412 reloads the note and says so.
  async function save(n, body, alert, fields = []) {
    const current = items.get(n.id) || n;
    try {
      const { data } = await patch(`/notes/${n.id}`, body, { headers: ifMatch(current) });
      editing.delete(n.id);
      if (filtered()) reload();
      else upsert(data);
      tags.refresh();
      showProblem(alert, fields, null);
      return true;
    } catch (err) {
      if (err.status === 412) {
        err.problem.detail = 'This note was changed on another device. The latest version is loaded; check it and save again.';
        await reloadItem(n.id);
      }
      if (err.status === 404) remove(n.id);
      showProblem(alert, fields, err);
      return false;
    }
  }

  function startEdit(n) {
    const f = noteFields(n);
    const alert = alertBox();
    const saveBtn = h('button', { type: 'submit', class: 'primary' }, 'Save');
    const cancel = () => {
      editing.delete(n.id);
      renderList();
    };
    const form = h(
      'form',
      {
        class: 'edit-form',
        novalidate: true,
        onsubmit: async (e) => {
          e.preventDefault();
          const ok = await busy(saveBtn, () => save(n, f.values(), alert, f.list));
          if (!ok) {
            const fresh = items.get(n.id);
            if (fresh && fresh.version !== n.version) {
              n = fresh;
              f.title.input.value = fresh.title;
              f.body.input.value = fresh.body;
              f.tags.input.value = fresh.tags.join(' ');
              f.pinned.checked = fresh.pinned;
            }
          }
        },
        onkeydown: (e) => {
          if (e.key === 'Escape') cancel();
        },
      },
      alert,
      f.title.row,
      f.body.row,
      f.tags.row,
      f.pinnedRow,
      h('div', { class: 'row' }, saveBtn, h('button', { type: 'button', class: 'secondary', onclick: cancel }, 'Cancel')),
    );
    editing.set(n.id, form);
    renderList();
    f.title.input.focus();
  }

  async function reloadItem(id) {
    try {
      const { data } = await get(`/notes/${id}`);
      items.set(id, data);
    } catch (e) {
      if (e.status === 404) items.delete(id);
    }
  }

  async function doDelete(n) {
    try {
      await del(`/notes/${n.id}`, { headers: ifMatch(items.get(n.id) || n) });
      remove(n.id);
      tags.refresh();
    } catch (err) {
      if (err.status === 404) return remove(n.id);
      if (err.status === 412) {
        await reloadItem(n.id);
        confirming.delete(n.id);
        renderList();
        err.problem.detail = 'This note was changed on another device; check it before deleting.';
      }
      showProblem(listAlert, [], err);
    }
  }

  let loadSeq = 0;
  async function loadMore() {
    const mine = loadSeq;
    try {
      const params = { limit: PAGE, cursor, q: filters.q, tag: filters.tag, pinned: filters.pinned ? 'true' : '' };
      const { data } = await get(`/notes${query(params)}`);
      if (mine !== loadSeq) return;
      for (const n of data.items) items.set(n.id, n);
      cursor = data.next_cursor;
      loadedAll = !cursor;
      showProblem(listAlert, [], null);
      renderList();
    } catch (err) {
      if (mine === loadSeq) showProblem(listAlert, [], err);
    }
  }

  function reload() {
    loadSeq++;
    items.clear();
    editing.clear();
    confirming.clear();
    cursor = null;
    loadedAll = false;
    list.setAttribute('aria-busy', 'true');
    return loadMore().finally(() => list.removeAttribute('aria-busy'));
  }

  let reloadTimer = null;
  const off = ctx.live.on('event', (m) => {
    if (!m.event || !m.event.startsWith('note.') || !m.data) return;
    tags.refresh();
    if (m.event === 'note.deleted') {
      if (items.has(m.data.id)) remove(m.data.id);
      return;
    }
    if (filtered()) {
      clearTimeout(reloadTimer);
      reloadTimer = setTimeout(reload, 200);
      return;
    }
    const known = items.get(m.data.id);
    if (known && known.version >= m.data.version) return;
    if (known && editing.has(m.data.id)) items.set(m.data.id, m.data);
    else upsert(m.data);
  });

  const el = h(
    'section',
    { class: 'notes-page' },
    h('div', { class: 'page-head' }, h('h1', null, 'Notes')),
    h(
      'div',
      { class: 'two-col notes-layout' },
      h('div', null, createForm),
      h(
        'section',
        { class: 'card', 'aria-labelledby': 'notes-h' },
        h('h2', { id: 'notes-h' }, 'Your notes'),
        h('div', { class: 'search-row', role: 'search' }, h('label', { for: 'note-search', class: 'visually-hidden' }, 'Search notes'), search, h('div', { class: 'field check' }, pinnedOnly, h('label', { for: 'pinned-only' }, 'Pinned only'))),
        tagBar,
        listAlert,
        empty,
        list,
        more,
      ),
    ),
  );
  return {
    el,
    mounted() {
      loadMore();
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
