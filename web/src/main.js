// The app shell: session state, a history-API router (pulsed answers every extension-less
// path outside /api and /health with index.html), the navigation bar with the subject
// switcher, and the live socket. An invitation link is `/#/invite/<code>`: the code stays in
// the fragment, which browsers never send to a server (no access log, no Referer).
import './style.css';
import { ApiError, get, post, replay, setUnauthorizedHandler, signedIn } from './api.js';
import { outbox } from './outbox.js';
import { h, replace } from './dom.js';
import { live } from './live.js';
import { metricsHistory } from './metrics.js';
import { dashboardPage } from './pages/dashboard.js';
import { feedingsPage } from './pages/feedings.js';
import { loginPage, registerPage } from './pages/auth.js';
import { notesPage } from './pages/notes.js';
import { profilePage } from './pages/profile.js';
import { sinceLast } from './since.js';
import { invitePage, subjectPage, subjectsPage } from './pages/subjects.js';
import { subjects } from './subjects.js';

const ROUTES = {
  // perSubject: the page shows the chosen subject's records (built again when it changes)
  '/': { page: dashboardPage, title: 'Live', perSubject: true },
  '/feedings': { page: feedingsPage, title: 'Feedings', perSubject: true },
  '/notes': { page: notesPage, title: 'Notes', perSubject: true },
  '/profile': { page: profilePage, title: 'Profile' },
  '/subjects': { page: subjectsPage, title: 'Subjects' },
  '/invite': { page: invitePage, title: 'Invitation' },
  '/login': { page: loginPage, title: 'Sign in', public: true },
  '/register': { page: registerPage, title: 'Create an account', public: true },
};
const NAV = [
  ['/', 'Live'],
  ['/feedings', 'Feedings'],
  ['/notes', 'Notes'],
  ['/subjects', 'Subjects'],
  ['/profile', 'Profile'],
];
// Routes with an id: [pattern, route].
const PARAM_ROUTES = [[/^\/subjects\/([0-9a-f-]{36})$/i, { page: subjectPage, title: 'Subject' }]];
// An invitation opened before signing in is kept for after it (this tab only).
const PENDING_INVITE = 'pulse.pending-invite';
const inviteCode = () => {
  const m = location.hash.match(/^#\/invite\/([A-Za-z0-9_-]+)$/);
  return m ? m[1] : null;
};

// The last /me of this browser, so that the app starts offline (the service worker serves the
// shell; the outbox keeps the writes).
const ME = 'pulse.me';
const cachedMe = {
  get() {
    try {
      return JSON.parse(localStorage.getItem(ME));
    } catch {
      return null;
    }
  },
  set: (u) => (u ? localStorage.setItem(ME, JSON.stringify(u)) : localStorage.removeItem(ME)),
};

function startSession() {
  live.start();
  if (state.user) outbox.start(state.user, replay).catch(() => {});
}

const root = document.getElementById('app');
const state = { user: null, current: null, flash: '' };

function navigate(path, { replaceState = false } = {}) {
  if (path !== location.pathname + location.search + location.hash) {
    if (replaceState) history.replaceState(null, '', path);
    else history.pushState(null, '', path);
  }
  render();
}

function signedOut(message) {
  state.user = null;
  signedIn.set(false);
  cachedMe.set(null);
  live.stop();
  outbox.stop();
  subjects.clear();
  metricsHistory.clear();
  state.flash = message || '';
  navigate('/login', { replaceState: true });
}

setUnauthorizedHandler(() => {
  if (state.user) signedOut('Your session has ended. Please sign in again.');
});
live.on('revoked', () => signedOut('This session was signed out (revoked or expired).'));
// A handshake refused with 401 looks like any failed connection: after a few failures, ask
// the API whether the session still exists (a 401 there signs out through the handler).
live.on('retry', ({ attempt }) => {
  if (state.user && attempt % 3 === 0) get('/me').catch(() => {});
});
live.on('event', (msg) => {
  if (msg.event === 'profile.updated' && msg.data && state.user && msg.data.id === state.user.id) {
    state.user = { ...state.user, ...msg.data };
    subjects.defaultId = state.user.default_subject_id || subjects.defaultId;
  }
  if (state.user) subjects.apply(msg, reloadSubjects);
});
// Another subject chosen, or the user's role in the shown one changed (a viewer has no write
// controls): a page of the subject's records is built again. The subject pages follow their
// subject themselves; the switcher is refreshed in every case.
subjects.on((why) => {
  if (!state.user || !state.current) return;
  if ((why === 'switched' || why === 'role') && state.current.route.perSubject) render();
  else if (state.switcher) state.switcher.refresh();
});
function reloadSubjects() {
  if (state.user)
    subjects.load(state.user).then(
      () => subjects.emit('changed'),
      () => {},
    );
}
// Writes of the outbox reached the server: the page shows the server's records again.
outbox.on((_o, done) => {
  if (done && done.sent && state.user && state.current && state.current.route.perSubject) render();
});
// Events were missed and cannot be replayed: refetch what is shown.
live.on('resync', () => {
  if (!state.user) return;
  reloadSubjects();
  if (state.current && state.current.route.perSubject) render();
});
metricsHistory.listen(live);

const ctx = {
  get user() {
    return state.user;
  },
  setUser(user) {
    state.user = user;
  },
  navigate,
  live,
  subjects,
  signedIn(user) {
    state.user = user;
    signedIn.set(true);
    cachedMe.set(user);
    startSession();
    const code = sessionStorage.getItem(PENDING_INVITE);
    sessionStorage.removeItem(PENDING_INVITE);
    navigate(code ? `/#/invite/${code}` : '/', { replaceState: true });
  },
  signedOut,
  flash(message) {
    state.flash = message;
  },
  takeFlash() {
    const f = state.flash;
    state.flash = '';
    return f;
  },
};

async function logout(button) {
  button.disabled = true;
  live.stop();
  try {
    await post('/auth/logout', undefined, { auth: false });
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 401) {
      button.disabled = false;
      live.start();
      return;
    }
  }
  signedOut('You are signed out.');
}

function statusDot() {
  const el = h('span', { class: 'live-status', role: 'status', 'aria-live': 'polite' });
  const show = ({ status }) => {
    el.dataset.status = status;
    el.textContent =
      {
        open: 'Live',
        connecting: 'Connecting…',
        reconnecting: 'Reconnecting…',
        revoked: 'Signed out',
        idle: 'Offline',
      }[status] || status;
  };
  show({ status: live.status });
  return { el, off: live.on('status', show) };
}

// What a write refused on replay was, and why, in words.
function refusal(f) {
  const noun = f.path.startsWith('/notes') ? 'note' : 'feeding';
  const what = { POST: `A new ${noun}`, PATCH: `An edit of a ${noun}`, DELETE: `Deleting a ${noun}` }[f.method];
  const why =
    f.status === 412
      ? `it was changed on another device meanwhile; check it and make the change again`
      : (f.problem && (f.problem.detail || f.problem.title)) || 'the server refused it';
  return `${what || 'A change'} was not saved (${f.status}): ${why}.`;
}

// "N changes waiting" while the outbox holds writes, and every write the server refused on
// replay, with its reason, until the user dismisses it.
function outboxBanner() {
  const el = h('div', { class: 'outbox', role: 'status', 'aria-live': 'polite' });
  const show = () => {
    const n = outbox.waiting.length;
    const failed = outbox.failed;
    el.hidden = n === 0 && failed.length === 0;
    replace(
      el,
      n ? h('p', { class: 'outbox-waiting' }, n === 1 ? '1 change waiting' : `${n} changes waiting`) : null,
      failed.map((f) =>
        h(
          'p',
          { class: 'outbox-failed', role: 'alert' },
          `${refusal(f)} `,
          h('button', { type: 'button', class: 'secondary', onclick: () => outbox.dismiss(f.n) }, 'Dismiss'),
        ),
      ),
    );
  };
  show();
  return { el, off: outbox.on(show) };
}

// The subject switcher: a native <select> of the user's subjects (the choice is kept per device).
function switcher() {
  const select = h('select', {
    id: 'subject-switcher',
    onchange: () => subjects.select(select.value),
  });
  const refresh = () => {
    replace(
      select,
      subjects.items.map((s) =>
        h(
          'option',
          { value: s.id, selected: s.id === subjects.currentId },
          s.role === 'viewer' ? `${s.name} (view only)` : s.name,
        ),
      ),
    );
    select.value = subjects.currentId || '';
  };
  refresh();
  const el = h(
    'div',
    { class: 'switcher' },
    h('label', { for: 'subject-switcher', class: 'visually-hidden' }, 'Subject'),
    select,
  );
  return { el, refresh };
}

function shell(view, path) {
  const dot = statusDot();
  const since = sinceLast(ctx);
  state.switcher = switcher();
  const logoutBtn = h('button', { type: 'button', class: 'link-button', onclick: () => logout(logoutBtn) }, 'Sign out');
  const nav = h(
    'nav',
    { 'aria-label': 'Main' },
    h(
      'ul',
      null,
      NAV.map(([href, label]) =>
        h(
          'li',
          null,
          h(
            'a',
            {
              href,
              'data-link': true,
              'aria-current': href === path ? 'page' : href !== '/' && path.startsWith(`${href}/`) ? 'true' : null,
            },
            label,
          ),
        ),
      ),
    ),
  );
  const header = h(
    'header',
    { class: 'top' },
    h(
      'a',
      { class: 'brand', href: '/', 'data-link': true },
      h('img', { src: '/favicon.svg', alt: '', width: 24, height: 24 }),
      'Pulse',
    ),
    state.switcher.el,
    since.el,
    nav,
    h(
      'div',
      { class: 'who' },
      dot.el,
      h('span', { class: 'who-name' }, state.user.display_name || state.user.email),
      logoutBtn,
    ),
  );
  const main = h('main', { id: 'main', tabindex: '-1' }, view.el);
  const pending = outboxBanner();
  const off = () => {
    pending.off();
    dot.off();
    since.destroy();
  };
  return { nodes: [header, pending.el, main], off, main };
}

let renderSeq = 0;
async function render() {
  const seq = ++renderSeq;
  let path = location.pathname.length > 1 ? location.pathname.replace(/\/+$/, '') : '/';
  const code = path === '/' ? inviteCode() : null;
  if (code) path = '/invite';
  let route = ROUTES[path];
  const params = [];
  for (const [re, r] of PARAM_ROUTES) {
    const m = path.match(re);
    if (!route && m) {
      route = r;
      params.push(...m.slice(1));
    }
  }
  if (path === '/invite' && !code) route = null;
  if (!route) {
    cleanup();
    replace(
      root,
      h(
        'main',
        { id: 'main', tabindex: '-1', class: 'narrow' },
        h('h1', null, 'Not found'),
        h('p', null, h('a', { href: '/', 'data-link': true }, 'Go to the dashboard')),
      ),
    );
    document.title = 'Not found · Pulse';
    return;
  }
  if (!route.public && !state.user) {
    // kept for after signing in, also when the session turns out to have expired
    if (code) sessionStorage.setItem(PENDING_INVITE, code);
    if (!signedIn.get()) {
      if (code) state.flash = 'Sign in or create an account to accept the invitation.';
      navigate('/login', { replaceState: true });
      return;
    }
    let failure = null;
    try {
      state.user = (await get('/me', { auth: false })).data;
      cachedMe.set(state.user);
    } catch (e) {
      if (e.status === 401) {
        signedOut('Your session has ended. Please sign in again.');
        return;
      }
      if (e.status === 0 && cachedMe.get()) state.user = cachedMe.get();
      else failure = e;
    }
    if (failure) {
      replace(
        root,
        h(
          'main',
          { id: 'main', class: 'narrow' },
          h('h1', null, 'Pulse is unavailable'),
          h('p', { role: 'alert' }, failure.message),
          h('button', { type: 'button', onclick: () => render() }, 'Try again'),
        ),
      );
      return;
    }
    if (seq !== renderSeq) return;
    startSession();
  }
  if (!route.public && subjects.userId !== state.user.id) {
    try {
      await subjects.load(state.user);
    } catch {
      /* the pages fall back to the default subject */
    }
    if (seq !== renderSeq) return;
  }
  if (route.public && state.user) {
    navigate('/', { replaceState: true });
    return;
  }
  if (code) sessionStorage.removeItem(PENDING_INVITE); // shown now: not again after a later sign-in
  cleanup();
  const view = route.page(ctx, ...(code ? [code] : params));
  document.title = `${route.title} · Pulse`;
  if (route.public) {
    const main = h('main', { id: 'main', tabindex: '-1', class: 'narrow' }, view.el);
    replace(root, main);
    state.current = { view, off: null, route };
  } else {
    const s = shell(view, path);
    replace(root, ...s.nodes);
    state.current = { view, off: s.off, route };
  }
  if (seq > 1) window.scrollTo(0, 0);
  if (view.mounted) view.mounted();
  // Move focus to the page heading so screen readers announce the new page.
  const h1 = root.querySelector('main h1');
  if (h1 && seq > 1) {
    h1.tabIndex = -1;
    h1.focus({ preventScroll: true });
  }
}

function cleanup() {
  if (!state.current) return;
  if (state.current.view.destroy) state.current.view.destroy();
  if (state.current.off) state.current.off();
  state.current = null;
}

document.addEventListener('click', (e) => {
  const a = e.target.closest('a[data-link]');
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  e.preventDefault();
  navigate(a.getAttribute('href'));
});
window.addEventListener('popstate', render);
render();

// The service worker (dist/sw.js, built by scripts/service-worker.js) keeps the app shell for
// offline starts; the dev server has none.
if ('serviceWorker' in navigator && import.meta.env.PROD) {
  window.addEventListener('load', () => navigator.serviceWorker.register('/sw.js').catch(() => {}));
}
