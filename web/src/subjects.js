// The subjects (who or what is cared for) the signed-in user belongs to, and the one this
// device is looking at: the header's switcher sets it, every page reads and writes that
// subject's records (`subject_id` on every call), and it is remembered per device and per
// user in localStorage. Live events keep the list in step: a subject renamed or deleted, the
// user joining one (on another device), their role changing or their removal.
import { get } from './api.js';

const KEY = 'pulse.subject';

const roleRank = { viewer: 0, caregiver: 1, owner: 2 };

export class Subjects {
  constructor() {
    this.items = [];
    this.userId = null;
    this.defaultId = null;
    this.currentId = null;
    this.listeners = new Set();
  }

  on(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  emit(why) {
    for (const fn of [...this.listeners]) fn(why);
  }

  key() {
    return `${KEY}.${this.userId}`;
  }

  // Fetches the list for `user` and picks the current subject: the one remembered on this
  // device if the user still belongs to it, else their default subject, else the oldest.
  async load(user) {
    this.userId = user.id;
    this.defaultId = user.default_subject_id || null;
    let items;
    try {
      items = (await get('/subjects')).data.items;
      localStorage.setItem(`pulse.subjects-list.${this.userId}`, JSON.stringify(items));
    } catch (e) {
      // offline: the list last seen on this device (writes then go to the outbox)
      const kept = e.status === 0 ? localStorage.getItem(`pulse.subjects-list.${this.userId}`) : null;
      if (!kept) throw e;
      items = JSON.parse(kept);
    }
    this.items = items;
    this.pick();
  }

  pick() {
    const stored = localStorage.getItem(this.key());
    const has = (id) => id && this.items.some((s) => s.id === id);
    const id = [this.currentId, stored, this.defaultId].find(has) || (this.items[0] && this.items[0].id) || null;
    this.currentId = id;
    if (id) localStorage.setItem(this.key(), id);
  }

  clear() {
    if (this.userId) localStorage.removeItem(`pulse.subjects-list.${this.userId}`);
    this.items = [];
    this.userId = null;
    this.currentId = null;
  }

  get current() {
    return this.items.find((s) => s.id === this.currentId) || null;
  }

  get(id) {
    return this.items.find((s) => s.id === id) || null;
  }

  // The subject_id for the API calls of the pages (undefined before the list is loaded: the
  // API then uses the default subject).
  get id() {
    return this.currentId || undefined;
  }

  get role() {
    const s = this.current;
    return s ? s.role : 'owner';
  }

  // Writing feedings and notes: owners and caregivers; viewers only read.
  get canWrite() {
    return roleRank[this.role] >= roleRank.caregiver;
  }

  // `quiet`: the caller navigates itself (no page rebuild for the switch).
  select(id, { quiet = false } = {}) {
    if (!this.get(id) || id === this.currentId) return;
    this.currentId = id;
    localStorage.setItem(this.key(), id);
    this.emit(quiet ? 'changed' : 'switched');
  }

  // A subject created or joined here, or updated (PATCH answer or subject.updated event). Events
  // carry no `role`: the one we know is kept.
  upsert(s) {
    const i = this.items.findIndex((x) => x.id === s.id);
    if (i >= 0) this.items[i] = { ...this.items[i], ...s };
    else this.items.push(s);
    this.emit('changed');
  }

  // A subject left, deleted or lost. `quiet`: the caller has navigated away already.
  remove(id, { quiet = false } = {}) {
    const i = this.items.findIndex((x) => x.id === id);
    if (i < 0) return;
    this.items.splice(i, 1);
    const wasCurrent = id === this.currentId;
    if (wasCurrent) this.currentId = null;
    this.pick();
    this.emit(wasCurrent && !quiet ? 'switched' : 'changed');
  }

  // Live events about subjects and members (`subject_id` at the frame's top level).
  apply(m, reload) {
    const sid = m.subject_id;
    if (!sid || !m.event) return;
    const mine = m.data && m.data.user_id === this.userId;
    if (m.event === 'subject.updated' && m.data) {
      if (this.get(sid)) this.upsert({ ...m.data, role: this.get(sid).role });
    } else if (m.event === 'subject.deleted') {
      this.remove(sid);
    } else if (m.event === 'member.left' && mine) {
      this.remove(sid);
    } else if (m.event === 'member.joined' && mine) {
      if (!this.get(sid)) reload(); // joined on another device: fetch the subject with our role
    } else if (m.event === 'member.updated' && mine && m.data.role) {
      const s = this.get(sid);
      if (s && s.role !== m.data.role) {
        this.items[this.items.indexOf(s)] = { ...s, role: m.data.role };
        this.emit(sid === this.currentId ? 'role' : 'changed');
      }
    } else if ((m.event === 'member.joined' || m.event === 'member.left') && this.get(sid)) {
      const s = this.get(sid);
      const n = s.member_count + (m.event === 'member.joined' ? 1 : -1);
      this.items[this.items.indexOf(s)] = { ...s, member_count: Math.max(1, n) };
      this.emit('changed');
    }
  }
}

export const subjects = new Subjects();

// Does a live event about records concern the subject shown? (v1 servers send no subject_id.)
export const forCurrent = (m) => !m.subject_id || m.subject_id === subjects.currentId;
