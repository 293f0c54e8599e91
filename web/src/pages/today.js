// Today's progress towards the daily target (GET /api/v1/feedings/today), refreshed when a
// feeding or the profile changes, here or on another device (live events).
import { get, query } from '../api.js';
import { fmtNumber, fmtTime, h, replace } from '../dom.js';
import { forCurrent } from '../subjects.js';
import { fmtVolume, unitOf } from '../units.js';

export function todayCard(ctx, { compact = false } = {}) {
  const bar = h('progress', { max: 1, value: 0, 'aria-labelledby': 'today-summary' });
  const summary = h('p', { class: 'today-summary', id: 'today-summary' }, 'Loading…');
  const details = h('p', { class: 'muted' });
  const el = h(
    'section',
    { class: 'card today', 'aria-labelledby': 'today-h', dataset: { total: '' } },
    h(
      'div',
      { class: 'card-head' },
      h('h2', { id: 'today-h' }, 'Today'),
      compact && ctx.subjects.canWrite
        ? h('a', { href: '/feedings', 'data-link': true, class: 'button-link' }, 'Log a feeding')
        : null,
    ),
    summary,
    bar,
    details,
  );
  let timer = null;
  let seq = 0;
  const vol = (ml) => {
    const unit = unitOf(ctx.user);
    return unit === 'oz' ? fmtVolume(ml, unit) : `${fmtNumber(ml)} ml`;
  };
  const load = async () => {
    const mine = ++seq;
    try {
      const { data: t } = await get(`/feedings/today${query({ subject_id: ctx.subjects.id })}`);
      if (mine !== seq) return;
      el.dataset.total = String(t.total_ml);
      const tz = t.timezone;
      if (t.target_ml > 0) {
        bar.max = t.target_ml;
        bar.value = Math.min(t.total_ml, t.target_ml);
        bar.hidden = false;
        replace(
          summary,
          h('strong', null, vol(t.total_ml)),
          ` of ${vol(t.target_ml)}`,
          h('span', { class: 'pct' }, ` (${fmtNumber(t.progress * 100)}%)`),
        );
      } else {
        bar.hidden = true;
        replace(
          summary,
          h('strong', null, vol(t.total_ml)),
          ' today',
          h('span', { class: 'muted' }, ' · no daily target set'),
        );
      }
      const parts = [`${t.count} feeding${t.count === 1 ? '' : 's'}`];
      if (t.target_ml > 0) parts.push(t.remaining_ml > 0 ? `${vol(t.remaining_ml)} to go` : 'target reached');
      if (t.last_given_at) parts.push(`last at ${fmtTime(t.last_given_at, tz)}`);
      replace(details, parts.join(' · '));
    } catch (e) {
      if (mine === seq) replace(summary, h('span', { role: 'alert' }, e.message));
    }
  };
  // Several events in a row (another device logging quickly) cost one request.
  const soon = () => {
    clearTimeout(timer);
    timer = setTimeout(load, 150);
  };
  const off = ctx.live.on('event', (m) => {
    if (!m.event) return;
    if ((m.event.startsWith('feeding.') || m.event === 'subject.updated') && forCurrent(m)) soon();
    else if (m.event === 'profile.updated') soon();
  });
  return {
    el,
    load,
    refresh: soon,
    destroy() {
      off();
      clearTimeout(timer);
      seq++;
    },
  };
}
