// The breastfeeding timer: only its start time and side are kept, in localStorage per subject,
// so it survives a reload, a closed tab and a locked phone (nothing counts while the page
// sleeps; the elapsed time is always now − start). Stopping it is one POST of the feeding
// (method, given_at = start, duration_s) by the page.
const KEY = 'pulse.feed-timer';
export const MAX_S = 21600; // the API's duration_s limit (6 h)

const key = (subjectId) => `${KEY}.${subjectId || 'default'}`;

export function readTimer(subjectId) {
  try {
    const t = JSON.parse(localStorage.getItem(key(subjectId)) || 'null');
    if (t && typeof t.method === 'string' && Number.isFinite(Date.parse(t.start))) return t;
  } catch {
    /* a damaged entry is no timer */
  }
  return null;
}

export function startTimer(subjectId, method, now = new Date()) {
  const t = { method, start: now.toISOString() };
  localStorage.setItem(key(subjectId), JSON.stringify(t));
  return t;
}

export function clearTimer(subjectId) {
  localStorage.removeItem(key(subjectId));
}

export const elapsed = (t, now = Date.now()) => Math.max(0, (now - Date.parse(t.start)) / 1000);

// The feeding a stopped timer logs.
export function timerFeeding(t, subjectId, now = Date.now()) {
  return {
    method: t.method,
    given_at: t.start,
    duration_s: Math.min(MAX_S, Math.round(elapsed(t, now))),
    subject_id: subjectId,
  };
}

// Another tab of this browser started or stopped the subject's timer.
export function onTimerChange(subjectId, fn) {
  const listener = (e) => e.key === key(subjectId) && fn(readTimer(subjectId));
  window.addEventListener('storage', listener);
  return () => window.removeEventListener('storage', listener);
}
