// A paged list of records (feedings, notes) kept in step with the API: sorted rendering, an item
// view with Edit and Delete (→ "Delete? Delete/Keep"), inline edit forms, If-Match deletes, the
// "Load more" button and the empty text. The page supplies what differs:
//   path        the collection, e.g. '/notes' (items are `${path}/${id}`)
//   noun        'note': used in the "changed on another device" messages
//   listClass   the <ul>'s own class, next to 'items'
//   empty       the empty text (a function is called on every render)
//   order       the sort order (compare function)
//   label(r)    how Edit/Delete name the record in their aria-labels
//   view(r)     the contents of the item's .item-main
//   itemClass(r), actions(r)  optional: the <li>'s class ('item') and buttons before Edit
//   edit(r)     opens the edit form (with `form()` below)
//   params()    optional: more query parameters for the list
//   deleted()   optional: called after a record was deleted here
//   readOnly    optional: no Edit/Delete/actions (a viewer of the subject)
import { del, get, ifMatch, query } from './api.js';
import { alertBox, busy, h, replace, showProblem } from './dom.js';

const PAGE = 20;

export function recordList(o) {
  const items = new Map();
  const editing = new Map(); // id -> its edit form
  const confirming = new Set();
  let cursor = null;
  let loadedAll = false;
  let loadSeq = 0;
  const text = () => (typeof o.empty === 'function' ? o.empty() : o.empty);

  const list = h('ul', { class: `items ${o.listClass}`, 'aria-live': 'polite' });
  const alert = alertBox();
  const empty = h('p', { class: 'muted', hidden: true }, text());
  const more = h(
    'button',
    { type: 'button', class: 'secondary', hidden: true, onclick: () => busy(more, loadMore) },
    'Load more',
  );

  const confirm = (r, on) => {
    if (on) confirming.add(r.id);
    else confirming.delete(r.id);
    render();
  };

  function upsert(r) {
    items.set(r.id, r);
    render();
  }

  function remove(id) {
    items.delete(id);
    editing.delete(id);
    confirming.delete(id);
    render();
  }

  function render() {
    const sorted = [...items.values()].sort(o.order);
    replace(list, sorted.map(itemView));
    empty.hidden = sorted.length > 0;
    empty.textContent = text();
    more.hidden = loadedAll;
  }

  function itemView(r) {
    if (editing.has(r.id)) return h('li', { class: 'item editing', dataset: { id: r.id } }, editing.get(r.id));
    const label = o.label(r);
    const actions = o.readOnly
      ? []
      : confirming.has(r.id)
        ? [
            h('span', { class: 'confirm-text' }, 'Delete?'),
            h(
              'button',
              {
                type: 'button',
                class: 'danger',
                'aria-label': `Confirm deleting ${label}`,
                onclick: (e) => busy(e.currentTarget, () => doDelete(r)),
              },
              'Delete',
            ),
            h('button', { type: 'button', class: 'secondary', onclick: () => confirm(r, false) }, 'Keep'),
          ]
        : [
            o.actions ? o.actions(r) : null,
            h(
              'button',
              { type: 'button', class: 'secondary', 'aria-label': `Edit ${label}`, onclick: () => o.edit(r) },
              'Edit',
            ),
            h(
              'button',
              { type: 'button', class: 'secondary', 'aria-label': `Delete ${label}`, onclick: () => confirm(r, true) },
              'Delete',
            ),
          ];
    return h(
      'li',
      {
        class: `${o.itemClass ? o.itemClass(r) : 'item'}${r.pending ? ' pending' : ''}`,
        dataset: { id: r.id },
        title: r.pending ? 'Waiting to be sent' : null,
      },
      h('div', { class: 'item-main' }, o.view(r)),
      h('div', { class: 'item-actions' }, actions),
    );
  }

  // The edit form in place of the item: `children` between the alert and the Save/Cancel row;
  // Escape or Cancel closes it, `submit` runs on submit.
  function form(r, { alert: formAlert, save, children, submit, focus }) {
    const cancel = () => {
      editing.delete(r.id);
      render();
    };
    const el = h(
      'form',
      {
        class: 'edit-form',
        novalidate: true,
        onsubmit: (e) => {
          e.preventDefault();
          return submit();
        },
        onkeydown: (e) => {
          if (e.key === 'Escape') cancel();
        },
      },
      formAlert,
      children,
      h('div', { class: 'row' }, save, h('button', { type: 'button', class: 'secondary', onclick: cancel }, 'Cancel')),
    );
    editing.set(r.id, el);
    render();
    focus.focus();
  }

  // A saved record: its form closes and the list shows it.
  function saved(r) {
    editing.delete(r.id);
    upsert(r);
  }

  async function reloadItem(id) {
    try {
      const { data } = await get(`${o.path}/${id}`);
      items.set(id, data);
    } catch (e) {
      if (e.status === 404) items.delete(id);
    }
  }

  async function doDelete(r) {
    try {
      await del(`${o.path}/${r.id}`, { headers: ifMatch(items.get(r.id) || r) });
      remove(r.id);
      if (o.deleted) o.deleted();
    } catch (err) {
      if (err.status === 404) return remove(r.id);
      if (err.status === 412) {
        await reloadItem(r.id);
        confirm(r, false);
        err.problem.detail = `This ${o.noun} was changed on another device; check it before deleting.`;
      }
      showProblem(alert, [], err);
    }
  }

  async function loadMore() {
    const mine = loadSeq;
    try {
      const { data } = await get(`${o.path}${query({ limit: PAGE, cursor, ...(o.params ? o.params() : {}) })}`);
      if (mine !== loadSeq) return;
      for (const r of data.items) items.set(r.id, r);
      cursor = data.next_cursor;
      loadedAll = !cursor;
      showProblem(alert, [], null);
      render();
    } catch (err) {
      if (mine === loadSeq) showProblem(alert, [], err);
    }
  }

  // Starts over from the first page (a search or filter changed).
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

  // A record from a live event: shown unless what is shown is as new, or `fits(r, oldest)` says
  // it belongs to a page not loaded yet; an open edit form keeps its own values.
  function apply(r, fits) {
    const known = items.get(r.id);
    if (known && known.version >= r.version) return;
    if (!known && !loadedAll && fits) {
      const sorted = [...items.values()].sort(o.order);
      const oldest = sorted[sorted.length - 1];
      if (oldest && !fits(r, oldest)) return;
    }
    if (known && editing.has(r.id)) items.set(r.id, r);
    else upsert(r);
  }

  return {
    nodes: [alert, empty, list, more],
    alert,
    get: (id) => items.get(id),
    drop: (id) => items.has(id) && remove(id),
    upsert,
    remove,
    form,
    saved,
    reloadItem,
    loadMore,
    reload,
    apply,
  };
}
