// Subjects and their circles: the list of subjects with a form to create one; a subject's page
// (details, edited by owners with If-Match; members with their roles, which owners change or
// remove, and "Leave" for oneself; invitations: a link `/#/invite/<code>` with its QR code to
// scan on the other parent's phone, the pending ones, revoke; delete the subject); and the page
// an invitation link opens, which accepts it. Plus two small views the record pages share:
// the "for <subject>" line under their heading and each record's "by <member>".
import { del, get, ifMatch, patch, post } from '../api.js';
import { alertBox, busy, field, fmtDateTime, h, onSubmit, replace, showProblem } from '../dom.js';

const KINDS = ['baby', 'child', 'adult', 'cat', 'dog', 'pet', 'other'];
const ROLES = ['owner', 'caregiver', 'viewer'];
const ROLE_TEXT = {
  owner: 'owner: edits the subject and manages its circle',
  caregiver: 'caregiver: reads and logs',
  viewer: 'viewer: reads only',
};

function zones() {
  try {
    return Intl.supportedValuesOf('timeZone');
  } catch {
    return ['UTC'];
  }
}

// "For Mia" under a record page's heading; a viewer is told why there is nothing to write with.
export function subjectLine(ctx) {
  const s = ctx.subjects.current;
  if (!s) return null;
  return h(
    'p',
    { class: 'subject-line' },
    'For ',
    h('a', { href: `/subjects/${s.id}`, 'data-link': true }, s.name),
    s.role === 'viewer' ? h('span', { class: 'badge' }, 'view only') : null,
  );
}

// Who logged a record: "by Ann", "by you", or "by a deleted account" once that account is gone.
export function byLine(r, ctx) {
  if (!('created_by' in r)) return null; // a server without circles
  const c = r.created_by;
  const who = !c ? 'a deleted account' : ctx.user && c.id === ctx.user.id ? 'you' : c.display_name || 'a member';
  return h('span', { class: 'by muted' }, `by ${who}`);
}

// The fields of a subject (create and edit).
function subjectFields(s, ctx) {
  const name = field('Name', h('input', { type: 'text', maxlength: 80, required: true, autocomplete: 'off' }), 'name');
  const kind = field(
    'Kind',
    h(
      'select',
      null,
      KINDS.map((k) => h('option', { value: k }, k)),
    ),
    'kind',
  );
  const birth = field('Birth date (optional)', h('input', { type: 'date' }), 'birth_date');
  const zone = field(
    'Time zone',
    h('input', { type: 'text', list: 'subject-tz-list', autocomplete: 'off', spellcheck: 'false' }),
    'timezone',
    '“Today” and the daily totals of this subject follow this zone.',
  );
  const target = field(
    'Daily target (ml)',
    h('input', { type: 'number', min: 0, max: 10000, step: 10, inputmode: 'numeric' }),
    'daily_target_ml',
    '0 means no target.',
  );
  const zoneList = h(
    'datalist',
    { id: 'subject-tz-list' },
    zones().map((z) => h('option', { value: z })),
  );
  const fill = (x) => {
    name.input.value = x.name || '';
    kind.input.value = x.kind || 'baby';
    birth.input.value = x.birth_date || '';
    zone.input.value = x.timezone || (ctx.user && ctx.user.timezone) || 'UTC';
    target.input.value = String(x.daily_target_ml || 0);
  };
  fill(s || {});
  const values = () => ({
    name: name.input.value.trim(),
    kind: kind.input.value,
    birth_date: birth.input.value || null,
    timezone: zone.input.value.trim(),
    daily_target_ml: target.input.value === '' ? 0 : Number(target.input.value),
  });
  return {
    list: [name, kind, birth, zone, target],
    rows: [h('div', { class: 'edit-grid' }, name.row, kind.row, birth.row, zone.row, target.row), zoneList],
    fill,
    values,
    name,
  };
}

// ---- /subjects ----
export function subjectsPage(ctx) {
  const list = h('ul', { class: 'items subjects-list' });
  const render = () =>
    replace(
      list,
      ctx.subjects.items.map((s) =>
        h(
          'li',
          { class: 'item', dataset: { id: s.id } },
          h(
            'div',
            { class: 'item-main' },
            h('a', { href: `/subjects/${s.id}`, 'data-link': true, class: 'subject-name' }, s.name),
            h('span', { class: 'kind' }, s.kind),
            h('span', { class: 'badge role' }, s.role),
            s.id === ctx.subjects.currentId ? h('span', { class: 'badge' }, 'shown') : null,
            h(
              'p',
              { class: 'muted' },
              `${s.member_count} member${s.member_count === 1 ? '' : 's'} · ${s.timezone}${
                s.daily_target_ml ? ` · target ${s.daily_target_ml} ml a day` : ''
              }`,
            ),
          ),
          s.id === ctx.subjects.currentId
            ? null
            : h(
                'div',
                { class: 'item-actions' },
                h(
                  'button',
                  {
                    type: 'button',
                    class: 'secondary',
                    'aria-label': `Show ${s.name}`,
                    onclick: () => ctx.subjects.select(s.id),
                  },
                  'Show',
                ),
              ),
        ),
      ),
    );

  const f = subjectFields(null, ctx);
  const alert = alertBox();
  const btn = h('button', { type: 'submit', class: 'primary' }, 'Add subject');
  const form = h(
    'form',
    {
      class: 'card',
      novalidate: true,
      'aria-labelledby': 'new-subject-h',
      onsubmit: onSubmit({
        alert,
        fields: f.list,
        button: btn,
        send: () => post('/subjects', f.values()),
        done: ({ data }) => {
          ctx.subjects.upsert(data);
          ctx.navigate(`/subjects/${data.id}`);
        },
      }),
    },
    h('h2', { id: 'new-subject-h' }, 'New subject'),
    h('p', { class: 'muted' }, 'A baby, a child, a pet, a parent you look after: each has its own log and circle.'),
    alert,
    f.rows,
    btn,
  );

  const off = ctx.subjects.on(render);
  const el = h(
    'section',
    { class: 'subjects-page' },
    h('div', { class: 'page-head' }, h('h1', null, 'Subjects')),
    h(
      'div',
      { class: 'two-col' },
      h(
        'section',
        { class: 'card', 'aria-labelledby': 'subjects-h' },
        h('h2', { id: 'subjects-h' }, 'Yours'),
        h('p', { class: 'muted' }, 'The one shown is chosen at the top of the page, and remembered on this device.'),
        list,
      ),
      form,
    ),
  );
  return {
    el,
    mounted: render,
    destroy: off,
  };
}

// ---- /subjects/<id> ----
export function subjectPage(ctx, id) {
  let subject = ctx.subjects.get(id);
  const me = ctx.user.id;
  const isOwner = () => subject && subject.role === 'owner';
  const title = h('h1', null, subject ? subject.name : 'Subject');
  const head = h('div', { class: 'subject-head' });
  const body = h('div', { class: 'two-col' });
  const pageAlert = alertBox();
  const flash = ctx.takeFlash();
  const notice = h('p', { class: 'notice', role: 'status', hidden: !flash }, flash);

  // ---- details ----
  const f = subjectFields(subject, ctx);
  let dirty = false;
  f.list.forEach((x) => x.input.addEventListener('input', () => (dirty = true)));
  const detailsAlert = alertBox();
  const detailsStatus = h('p', { class: 'notice', role: 'status', hidden: true });
  const saveBtn = h('button', { type: 'submit', class: 'primary' }, 'Save');
  const detailsForm = h(
    'form',
    {
      class: 'card',
      novalidate: true,
      'aria-labelledby': 'details-h',
      onsubmit: onSubmit({
        alert: detailsAlert,
        fields: f.list,
        button: saveBtn,
        status: detailsStatus,
        send: () => patch(`/subjects/${id}`, f.values(), { headers: ifMatch(subject) }),
        done: ({ data }) => {
          setSubject(data);
          dirty = false;
          detailsStatus.hidden = false;
          detailsStatus.textContent = 'Saved.';
        },
        messages: {
          412: 'This subject was changed on another device. The latest version is shown; check it and save again.',
        },
        failed: async (err) => {
          if (err.status === 412) {
            dirty = false;
            await loadSubject();
          }
        },
      }),
    },
    h('h2', { id: 'details-h' }, 'Details'),
    detailsAlert,
    f.rows,
    saveBtn,
    detailsStatus,
  );
  const detailsView = h('section', { class: 'card', 'aria-labelledby': 'details-h' });
  function renderDetails() {
    if (isOwner()) {
      if (!dirty) f.fill(subject);
      return;
    }
    replace(
      detailsView,
      h('h2', { id: 'details-h' }, 'Details'),
      h(
        'dl',
        { class: 'facts' },
        h('dt', null, 'Kind'),
        h('dd', null, subject.kind),
        h('dt', null, 'Birth date'),
        h('dd', null, subject.birth_date || '–'),
        h('dt', null, 'Time zone'),
        h('dd', null, subject.timezone),
        h('dt', null, 'Daily target'),
        h('dd', null, subject.daily_target_ml ? `${subject.daily_target_ml} ml` : 'none'),
      ),
      h('p', { class: 'muted' }, 'Only its owners can change these.'),
    );
  }

  // ---- members ----
  const memberList = h('ul', { class: 'items members-list', 'aria-live': 'polite' });
  const membersAlert = alertBox();
  let members = [];
  async function loadMembers() {
    try {
      const { data } = await get(`/subjects/${id}/members`);
      members = data.items;
      renderMembers();
    } catch (err) {
      if (err.status === 404) return gone();
      showProblem(membersAlert, [], err);
    }
  }
  const countEl = h('span', { class: 'muted member-count' });
  const showCount = (n) => (countEl.textContent = `${n} member${n === 1 ? '' : 's'}`);
  function renderMembers() {
    if (members.length) showCount(members.length);
    replace(
      memberList,
      members.map((m) => {
        const who = m.display_name || m.email;
        const self = m.user_id === me;
        let roleControl;
        if (isOwner()) {
          const sel = h(
            'select',
            {
              id: `role-${m.user_id}`,
              class: 'role-select',
              onchange: () =>
                busy(sel, async () => {
                  try {
                    const { data } = await patch(`/subjects/${id}/members/${m.user_id}`, { role: sel.value });
                    showProblem(membersAlert, [], null);
                    Object.assign(m, data);
                    if (self) loadSubject();
                  } catch (err) {
                    sel.value = m.role;
                    showProblem(membersAlert, [], err);
                  }
                }),
            },
            ROLES.map((r) => h('option', { value: r, selected: r === m.role }, r)),
          );
          roleControl = [h('label', { for: sel.id, class: 'visually-hidden' }, `Role of ${who}`), sel];
        } else {
          roleControl = h('span', { class: 'badge role' }, m.role);
        }
        const removeLabel = self ? 'Leave' : 'Remove';
        // The last owner cannot leave (409): they delete the subject or make someone owner first.
        const lastOwner = m.role === 'owner' && members.filter((x) => x.role === 'owner').length === 1;
        const canRemove = self ? !lastOwner : isOwner();
        return h(
          'li',
          { class: 'item', dataset: { userId: m.user_id } },
          h(
            'div',
            { class: 'item-main' },
            h('strong', null, who, self ? h('span', { class: 'badge' }, 'you') : null),
            h('p', { class: 'muted' }, `${m.email} · joined ${fmtDateTime(m.joined_at, ctx.user.timezone)}`),
          ),
          h(
            'div',
            { class: 'item-actions' },
            roleControl,
            canRemove
              ? h(
                  'button',
                  {
                    type: 'button',
                    class: 'secondary',
                    'aria-label': self ? `Leave ${subject ? subject.name : 'this subject'}` : `Remove ${who}`,
                    onclick: (e) =>
                      busy(e.currentTarget, async () => {
                        try {
                          await del(`/subjects/${id}/members/${m.user_id}`);
                          if (self) {
                            ctx.navigate('/subjects', { replaceState: true });
                            ctx.subjects.remove(id, { quiet: true });
                            return;
                          }
                          members = members.filter((x) => x.user_id !== m.user_id);
                          renderMembers();
                        } catch (err) {
                          showProblem(membersAlert, [], err);
                        }
                      }),
                  },
                  removeLabel,
                )
              : null,
          ),
        );
      }),
    );
  }

  // ---- invitations (owners) ----
  const invRole = field(
    'Role',
    h(
      'select',
      null,
      ['caregiver', 'viewer'].map((r) => h('option', { value: r }, ROLE_TEXT[r])),
    ),
    'role',
  );
  const invHours = field(
    'Valid for (hours)',
    h('input', { type: 'number', min: 1, max: 168, value: '72', inputmode: 'numeric' }),
    'expires_in_hours',
    '1 to 168 (a week). The link works once.',
  );
  const invAlert = alertBox();
  const invShown = h('div', { class: 'invite-shown', hidden: true, role: 'status' });
  const invList = h('ul', { class: 'items compact invitations-list' });
  const invBtn = h('button', { type: 'submit', class: 'primary' }, 'Create invitation link');
  const invForm = h(
    'form',
    {
      novalidate: true,
      class: 'invite-form',
      onsubmit: onSubmit({
        alert: invAlert,
        fields: [invRole, invHours],
        button: invBtn,
        send: () =>
          post(`/subjects/${id}/invitations`, {
            role: invRole.input.value,
            expires_in_hours: invHours.input.value === '' ? 72 : Number(invHours.input.value),
          }),
        done: ({ data }) => {
          showInvitation(data);
          loadInvitations();
        },
      }),
    },
    invAlert,
    h('div', { class: 'edit-grid' }, invRole.row, invHours.row),
    invBtn,
  );
  async function showInvitation(inv) {
    const link = `${location.origin}/#/invite/${inv.code}`;
    const code = h('code', { class: 'secret invite-link' }, link);
    const copy = h(
      'button',
      {
        type: 'button',
        class: 'secondary',
        onclick: async () => {
          try {
            await navigator.clipboard.writeText(link);
            copy.textContent = 'Copied';
          } catch {
            const r = document.createRange();
            r.selectNodeContents(code);
            getSelection().removeAllRanges();
            getSelection().addRange(r);
          }
        },
      },
      'Copy link',
    );
    const qr = h('img', {
      class: 'qr',
      alt: `QR code of the invitation link for ${subject ? subject.name : 'this subject'}`,
      width: 240,
      height: 240,
    });
    replace(
      invShown,
      h(
        'p',
        null,
        h('strong', null, `Invitation as ${inv.role} created.`),
        ` Send this link, or let the other phone scan the code. It works once, until ${fmtDateTime(inv.expires_at, ctx.user.timezone)}, and is not shown again.`,
      ),
      h('div', { class: 'row' }, code, copy),
      qr,
    );
    invShown.hidden = false;
    try {
      // The QR library is loaded only when an invitation is shown (not part of the first load).
      const { default: QRCode } = await import('qrcode');
      qr.src = await QRCode.toDataURL(link, { errorCorrectionLevel: 'M', margin: 2, width: 240 });
    } catch (err) {
      qr.replaceWith(h('p', { class: 'muted' }, 'The QR code could not be drawn; send the link instead.'));
    }
  }
  async function loadInvitations() {
    if (!isOwner()) return;
    try {
      const { data } = await get(`/subjects/${id}/invitations`);
      replace(
        invList,
        data.items.length
          ? data.items.map((inv) =>
              h(
                'li',
                { class: 'item', dataset: { id: inv.id } },
                h(
                  'div',
                  { class: 'item-main' },
                  h('strong', null, `as ${inv.role}`),
                  h(
                    'p',
                    { class: 'muted' },
                    `created ${fmtDateTime(inv.created_at, ctx.user.timezone)} · expires ${fmtDateTime(inv.expires_at, ctx.user.timezone)}`,
                  ),
                ),
                h(
                  'div',
                  { class: 'item-actions' },
                  h(
                    'button',
                    {
                      type: 'button',
                      class: 'secondary',
                      'aria-label': `Revoke invitation as ${inv.role} created ${fmtDateTime(inv.created_at, ctx.user.timezone)}`,
                      onclick: (e) =>
                        busy(e.currentTarget, async () => {
                          try {
                            await del(`/subjects/${id}/invitations/${inv.id}`);
                            loadInvitations();
                          } catch (err) {
                            showProblem(invAlert, [], err);
                          }
                        }),
                    },
                    'Revoke',
                  ),
                ),
              ),
            )
          : h('li', { class: 'muted' }, 'No pending invitations.'),
      );
    } catch (err) {
      showProblem(invAlert, [], err);
    }
  }

  // ---- delete ----
  const delConfirm = h('input', { type: 'checkbox', id: 'delete-subject-confirm' });
  const delAlert = alertBox();
  const delBtn = h('button', { type: 'submit', class: 'danger' }, 'Delete this subject');
  const deleteForm = h(
    'form',
    {
      class: 'card danger-zone',
      novalidate: true,
      'aria-labelledby': 'delete-subject-h',
      onsubmit: onSubmit({
        alert: delAlert,
        button: delBtn,
        check: () => {
          if (delConfirm.checked) return null;
          delConfirm.focus();
          return { problem: { detail: 'Tick the box to confirm.' } };
        },
        send: () => del(`/subjects/${id}`, { headers: ifMatch(subject) }),
        done: () => {
          ctx.navigate('/subjects', { replaceState: true });
          ctx.subjects.remove(id, { quiet: true });
        },
        messages: { 412: 'This subject was changed on another device; check it before deleting.' },
        failed: async (err) => {
          if (err.status === 412) await loadSubject();
        },
      }),
    },
    h('h2', { id: 'delete-subject-h' }, 'Delete subject'),
    h('p', null, 'This deletes its feedings and notes for every member of its circle, for good.'),
    delAlert,
    h(
      'div',
      { class: 'field check' },
      delConfirm,
      h('label', { for: 'delete-subject-confirm' }, 'I understand that this cannot be undone'),
    ),
    delBtn,
  );

  function layout() {
    title.textContent = subject.name;
    showCount(members.length || subject.member_count);
    document.title = `${subject.name} · Pulse`;
    replace(
      head,
      h('span', { class: 'badge role' }, `you are ${subject.role}`),
      countEl,
      subject.id === ctx.subjects.currentId
        ? null
        : h(
            'button',
            { type: 'button', class: 'secondary', onclick: () => ctx.subjects.select(subject.id) },
            'Show its records',
          ),
    );
    const owner = isOwner();
    replace(
      body,
      h(
        'div',
        null,
        owner ? detailsForm : detailsView,
        owner
          ? h(
              'section',
              { class: 'card', 'aria-labelledby': 'invite-h' },
              h('h2', { id: 'invite-h' }, 'Invite someone'),
              h(
                'p',
                { class: 'muted' },
                'The other parent, a grandparent, a sitter: they join with the link or QR code.',
              ),
              invForm,
              invShown,
              h('h3', null, 'Pending invitations'),
              invList,
            )
          : null,
      ),
      h(
        'div',
        null,
        h(
          'section',
          { class: 'card', 'aria-labelledby': 'members-h' },
          h('h2', { id: 'members-h' }, 'Members'),
          membersAlert,
          memberList,
        ),
        owner ? deleteForm : null,
      ),
    );
    renderDetails();
    renderMembers();
  }

  function setSubject(s) {
    const wasOwner = isOwner();
    subject = { ...subject, ...s };
    ctx.subjects.upsert(subject);
    if (wasOwner !== isOwner()) {
      layout();
      loadInvitations();
    } else {
      title.textContent = subject.name;
      renderDetails();
    }
  }

  async function loadSubject() {
    try {
      const { data } = await get(`/subjects/${id}`);
      const first = !subject || !body.firstChild;
      subject = { ...subject, ...data };
      ctx.subjects.upsert(subject);
      if (first) {
        layout();
        loadInvitations();
      } else setSubject(data);
    } catch (err) {
      if (err.status === 404) return gone();
      showProblem(pageAlert, [], err);
    }
  }

  function gone() {
    ctx.subjects.remove(id);
    replace(
      body,
      h(
        'div',
        null,
        h('p', null, 'This subject does not exist, or you are no longer a member of its circle.'),
        h('p', null, h('a', { href: '/subjects', 'data-link': true }, 'Your subjects')),
      ),
    );
    replace(head);
    title.textContent = 'Subject not found';
  }

  // Changes from other members and devices.
  let membersTimer = null;
  const off = ctx.live.on('event', (m) => {
    if (m.subject_id !== id || !m.event) return;
    if (m.event === 'subject.updated' && m.data) setSubject({ ...m.data, role: subject.role });
    else if (m.event === 'subject.deleted') gone();
    else if (m.event === 'member.left' && m.data && m.data.user_id === me) gone();
    else if (m.event.startsWith('member.')) {
      if (m.event === 'member.updated' && m.data && m.data.user_id === me && m.data.role !== subject.role)
        setSubject({ role: m.data.role });
      clearTimeout(membersTimer);
      membersTimer = setTimeout(loadMembers, 150);
      if (isOwner()) loadInvitations(); // an accepted invitation is no longer pending
    }
  });

  const el = h(
    'section',
    { class: 'subject-page' },
    h(
      'div',
      { class: 'page-head' },
      title,
      h('a', { href: '/subjects', 'data-link': true, class: 'link-button' }, 'All subjects'),
    ),
    head,
    notice,
    pageAlert,
    body,
  );
  return {
    el,
    mounted() {
      if (subject) {
        layout();
        loadInvitations();
      }
      loadSubject();
      loadMembers();
    },
    destroy() {
      off();
      clearTimeout(membersTimer);
    },
  };
}

// ---- /#/invite/<code> ----
export function invitePage(ctx, code) {
  const alert = alertBox();
  const btn = h('button', { type: 'button', class: 'primary big' }, 'Accept invitation');
  btn.addEventListener('click', () =>
    busy(btn, async () => {
      showProblem(alert, [], null);
      try {
        const { data } = await post('/invitations/accept', { code });
        ctx.subjects.upsert(data);
        ctx.subjects.select(data.id, { quiet: true });
        ctx.flash(`You joined ${data.name}'s circle as ${data.role}.`);
        ctx.navigate(`/subjects/${data.id}`, { replaceState: true });
      } catch (err) {
        if (err.status === 404)
          err.problem.detail =
            'This invitation is not valid: it was already used, revoked, or it has expired. Ask for a new link.';
        if (err.status === 409) err.problem.detail = 'You are already a member of this circle.';
        showProblem(alert, [], err);
      }
    }),
  );
  const el = h(
    'section',
    { class: 'invite-page narrow-card' },
    h('div', { class: 'page-head' }, h('h1', null, 'Invitation')),
    h(
      'section',
      { class: 'card' },
      h('p', null, 'You were invited to join a care circle.'),
      h('p', null, `You are signed in as ${ctx.user.display_name || ctx.user.email}.`),
      h('p', { class: 'muted' }, 'You will see its log and, unless you are invited as a viewer, add to it.'),
      alert,
      btn,
      h('p', null, h('a', { href: '/', 'data-link': true }, 'Not now')),
    ),
  );
  return { el };
}
