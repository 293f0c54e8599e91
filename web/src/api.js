// The REST client. The browser authenticates with the HttpOnly `pulse_session` cookie that
// login and register set; same-origin fetches send it, and the browser adds the Origin header
// that pulsed checks on POST/PATCH/DELETE. Errors are problem+json documents: ApiError keeps
// the document so forms can show `detail` and each `errors[].field`.

import { LOCAL, outbox } from './outbox.js';

const BASE = '/api/v1';
// The cookie is HttpOnly, so JavaScript cannot see whether a session exists. This hint says
// "we logged in from this browser": without it the app goes straight to the login page rather
// than asking /me and getting a 401.
const HINT = 'pulse.signed-in';

export class ApiError extends Error {
  constructor(status, problem, headers) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || { status };
    this.headers = headers;
  }
}

let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

export const signedIn = {
  get: () => localStorage.getItem(HINT) === '1',
  set: (v) => (v ? localStorage.setItem(HINT, '1') : localStorage.removeItem(HINT)),
};

// A write of feedings or notes made while offline (or while earlier ones still wait) goes to
// the outbox (src/outbox.js) and resolves as `{status: 202, queued: true, data}`: data is the
// record to show meanwhile (a create's body with a local id; an edit's `offline` record, the
// one edited, with the changes; null for a delete).
function queued(data) {
  return { status: 202, queued: true, data, etag: null, headers: new Headers() };
}

async function enqueue(method, path, body, headers, offline) {
  const data = await outbox.add(method, path, body, headers);
  if (method === 'PATCH' && !data && path.includes(`/${LOCAL}`))
    // its create was refused on replay (shown under the header): nothing left to edit
    throw new ApiError(404, { status: 404, title: 'Not found', detail: 'This record was not saved (see above).' });
  if (method === 'PATCH' && !data && offline) return queued({ ...offline, ...body, pending: true });
  return queued(data);
}

// Sends a write of the outbox again, with the headers it was made with.
export async function replay(entry) {
  try {
    const r = await api(entry.method, entry.path, { body: entry.body, headers: entry.headers, direct: true });
    return { status: r.status, data: r.data };
  } catch (e) {
    return { status: e.status || 0, problem: e.problem };
  }
}

export async function api(method, path, { body, headers = {}, auth = true, offline, direct = false } = {}) {
  const canQueue = !direct && outbox.queueable(method, path);
  if (canQueue && (outbox.waiting.length > 0 || path.includes(`/${LOCAL}`)))
    return enqueue(method, path, body, headers, offline);
  const init = { method, headers: { Accept: 'application/json', ...headers }, credentials: 'same-origin' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(BASE + path, init);
  } catch (e) {
    if (canQueue) return enqueue(method, path, body, headers, offline);
    throw new ApiError(0, {
      title: 'Network error',
      detail: 'The server cannot be reached. Check your connection and try again.',
    });
  }
  let data = null;
  const type = res.headers.get('content-type') || '';
  if (res.status !== 204 && type.includes('json')) {
    try {
      data = await res.json();
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const err = new ApiError(res.status, data, res.headers);
    if (res.status === 401 && auth) onUnauthorized(err);
    if (res.status === 429 || res.status === 503) {
      const after = res.headers.get('retry-after');
      if (after) err.problem.detail = `${err.problem.detail || err.message} (try again in ${after} s)`;
    }
    throw err;
  }
  return { status: res.status, data, etag: res.headers.get('etag'), headers: res.headers };
}

export const get = (path, opts) => api('GET', path, opts);
export const post = (path, body, opts) => api('POST', path, { ...opts, body });
export const patch = (path, body, opts) => api('PATCH', path, { ...opts, body });
export const del = (path, opts) => api('DELETE', path, opts);

// If-Match for a resource we hold: its ETag is its version, quoted.
export const ifMatch = (item) => ({ 'If-Match': `"${item.version}"` });

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') continue;
    for (const x of [].concat(v)) q.append(k, String(x));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

// A random Idempotency-Key, so a retried create never makes a duplicate.
export function idempotencyKey() {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}
