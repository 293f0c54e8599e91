// "Since last feed", always in view: a line in the sticky header for the chosen subject, from
// /stats/feedings `intervals.since_last_s` and then counted on locally (the figure is kept
// with the moment it was read, so a locked phone or a sleeping tab shows the right value when
// it wakes). Reloaded when a feeding of the subject changes (live events, also our own) or
// another subject is chosen. Hidden when the subject has no feeding (or the server predates
// intervals).
import { get, query } from './api.js';
import { h } from './dom.js';
import { forCurrent } from './subjects.js';
import { fmtDuration } from './units.js';

export function sinceLast(ctx) {
  const value = h('strong', { class: 'since-value' });
  const el = h('p', { class: 'since-last', role: 'status', hidden: true }, value, ' since last feed');
  let base = null; // { s, at }: since_last_s as read, and Date.now() then
  let seq = 0;
  let shownFor; // the subject the figure is about
  let timer = null;
  let soon = null;
  const show = () => {
    if (!base) {
      el.hidden = true;
      return;
    }
    const s = base.s + (Date.now() - base.at) / 1000;
    el.hidden = false;
    el.dataset.seconds = String(Math.floor(s));
    value.textContent = fmtDuration(s, { seconds: false });
  };
  const load = async () => {
    const mine = ++seq;
    shownFor = ctx.subjects.id;
    try {
      const { data } = await get(`/stats/feedings${query({ days: 1, subject_id: ctx.subjects.id })}`);
      if (mine !== seq) return;
      const s = data.intervals && data.intervals.since_last_s;
      base = Number.isFinite(s) ? { s, at: Date.now() } : null;
    } catch {
      if (mine === seq) base = null;
    }
    show();
  };
  const refresh = () => {
    clearTimeout(soon);
    soon = setTimeout(load, 200);
  };
  const offLive = ctx.live.on('event', (m) => {
    if (m.event && m.event.startsWith('feeding.') && forCurrent(m)) refresh();
  });
  // another subject chosen, or the shown one left or deleted (also "quietly", by a page that
  // navigates itself)
  const offSubj = ctx.subjects.on(() => ctx.subjects.id !== shownFor && refresh());
  timer = setInterval(show, 1000);
  // after the current task: a page that navigates and then drops a subject (leaving a circle)
  // has dropped it by then
  soon = setTimeout(load, 0);
  return {
    el,
    refresh,
    destroy() {
      seq++;
      clearInterval(timer);
      clearTimeout(soon);
      offLive();
      offSubj();
    },
  };
}
