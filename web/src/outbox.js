// The offline outbox: a write (POST/PATCH/DELETE of feedings and notes) that cannot reach the
// server is kept in IndexedDB (through the small `idb` wrapper) with the headers it was made
// with, its `Idempotency-Key` (creates) and `If-Match` (edits, deletes), and sent again, in
// the order it was made, when the network returns (the `online` event, the app's start, and
// every RETRY_MS while some wait). While any write waits, new writes queue behind it so that
// the order holds. A create made offline is shown at once with a local id (`local-<key>`);
// an edit or delete of such a record changes or removes the queued create instead of queueing
// a second write. A replay answered with anything but 2xx (a 412 because the record changed
// elsewhere, a 404, a 422...) is kept, marked failed with the server's problem, and shown
// until the user dismisses it: nothing is dropped silently. 429, 503 and network errors stay
// waiting and are tried again later.
import { openDB } from 'idb';

const DB = 'pulse-outbox';
const STORE = 'writes';
const RETRY_MS = 15000;
export const LOCAL = 'local-';
const QUEUED_PATH = /^\/(feedings|notes)(\/[^/?]+)?$/;

let dbp = null;
const db = () => {
  if (!dbp)
    dbp = openDB(DB, 1, {
      upgrade(d) {
        d.createObjectStore(STORE, { keyPath: 'n', autoIncrement: true });
      },
    });
  return dbp;
};

const listeners = new Set();
let entries = []; // every stored write, in order (a copy of the store)
let userId = null;
let flushing = null;
let timer = null;
let sender = null;

export const outbox = {
  get waiting() {
    return entries.filter((e) => e.state === 'waiting' && e.user === userId);
  },
  get failed() {
    return entries.filter((e) => e.state === 'failed' && e.user === userId);
  },
  on(fn) {
    listeners.add(fn);
    return () => listeners.delete(fn);
  },
  // Can this request be queued when the network fails?
  queueable(method, path) {
    return method !== 'GET' && QUEUED_PATH.test(path);
  },
  // Starts for a signed-in user: loads what waits and tries to send it. `send(entry)` makes
  // the request and returns {status, problem} (status 0: network error).
  async start(user, send) {
    userId = user.id;
    sender = send;
    window.addEventListener('online', onOnline);
    await reload();
    this.flush();
  },
  stop() {
    userId = null;
    window.removeEventListener('online', onOnline);
    clearTimeout(timer);
    emit();
  },
  // Keeps a write: returns the record to show meanwhile (creates: body plus a local id).
  async add(method, path, body, headers) {
    const d = await db();
    const m = path.match(/^\/(feedings|notes)\/([^/?]+)$/);
    if (m && m[2].startsWith(LOCAL)) return amendLocal(d, method, m[2], body);
    const entry = { method, path, body, headers, user: userId, state: 'waiting', at: Date.now() };
    if (method === 'POST') entry.local = LOCAL + (headers['Idempotency-Key'] || String(Date.now()));
    entry.n = await d.add(STORE, entry);
    entries.push(entry);
    emit();
    schedule();
    return method === 'POST' ? placeholder(entry) : null;
  },
  // Removes a failed write the user has seen.
  async dismiss(n) {
    const d = await db();
    await d.delete(STORE, n);
    entries = entries.filter((e) => e.n !== n);
    emit();
  },
  flush() {
    if (!flushing && userId) flushing = run().finally(() => (flushing = null));
    return flushing;
  },
};

function placeholder(entry) {
  const now = new Date().toISOString();
  const local = {
    id: entry.local,
    version: 1,
    created_at: now,
    updated_at: now,
    pending: true,
    ...entry.body,
  };
  if (entry.path === '/feedings' && !local.given_at) local.given_at = now;
  return local;
}

async function amendLocal(d, method, id, body) {
  const entry = entries.find((e) => e.local === id && e.state === 'waiting');
  if (!entry) return null;
  if (method === 'DELETE') {
    await d.delete(STORE, entry.n);
    entries = entries.filter((e) => e !== entry);
    emit();
    return null;
  }
  // an edit of a create not sent yet: the create carries the new values
  for (const [k, v] of Object.entries(body || {})) {
    if (v === null) delete entry.body[k];
    else entry.body[k] = v;
  }
  await d.put(STORE, entry);
  emit();
  return { ...placeholder(entry), version: 1 };
}

async function reload() {
  const d = await db();
  entries = await d.getAll(STORE);
  emit();
}

function emit() {
  for (const fn of [...listeners]) fn(outbox);
}

function onOnline() {
  outbox.flush();
}

function schedule() {
  clearTimeout(timer);
  if (outbox.waiting.length) timer = setTimeout(() => outbox.flush(), RETRY_MS);
}

async function run() {
  const d = await db();
  let sent = 0;
  for (;;) {
    const entry = entries.find((e) => e.state === 'waiting' && e.user === userId);
    if (!entry || !sender) break;
    const { status, problem } = await sender(entry);
    if (status === 0 || status === 401 || status === 429 || status === 503) break; // later
    if (status >= 200 && status < 300) {
      await d.delete(STORE, entry.n);
      entries = entries.filter((e) => e !== entry);
      sent++;
    } else {
      entry.state = 'failed';
      entry.status = status;
      entry.problem = problem || { status };
      await d.put(STORE, entry);
    }
    emit();
  }
  schedule();
  if (sent) for (const fn of [...listeners]) fn(outbox, { sent });
}
