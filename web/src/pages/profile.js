// Profile: name, time zone and daily target; sessions (list, revoke); personal access tokens
// (create, shown once, revoke); password change (optionally revoking every token); export;
// delete the account. With care circles: the default subject (what apps that name none use),
// whose target this page shows and sets only when the user owns it, and a warning before the
// deletion about the subjects that go with the account although others are in their circle.
import { del, get, patch, post } from '../api.js';
import { alertBox, busy, field, fmtDateTime, h, onSubmit, replace, showProblem } from '../dom.js';

function zones() {
  try {
    return Intl.supportedValuesOf('timeZone');
  } catch {
    return ['UTC'];
  }
}

export function profilePage(ctx) {
  const tz = () => ctx.user && ctx.user.timezone;

  // ---- profile ----
  const name = field('Name', h('input', { type: 'text', autocomplete: 'name', maxlength: 100 }), 'display_name');
  const zoneList = h(
    'datalist',
    { id: 'tz-list' },
    zones().map((z) => h('option', { value: z })),
  );
  const zone = field(
    'Time zone',
    h('input', { type: 'text', list: 'tz-list', autocomplete: 'off', spellcheck: 'false' }),
    'timezone',
    '“Today” and the daily totals follow this zone.',
  );
  const target = field(
    'Daily target (ml)',
    h('input', { type: 'number', min: 0, max: 10000, step: 10, inputmode: 'numeric' }),
    'daily_target_ml',
    '0 means no target.',
  );
  // The default subject: the one the API uses when a client names none (v1 apps, scripts).
  const defaultSubject = field(
    'Default subject',
    h('select', null),
    'default_subject_id',
    'What apps and scripts that do not name a subject log for. The daily target is its target.',
  );
  const ownsDefault = (u) => {
    const s = ctx.subjects.get(u.default_subject_id);
    return !s || s.role === 'owner';
  };
  const volume = field(
    'Volumes in',
    h(
      'select',
      null,
      h('option', { value: 'ml' }, 'millilitres (ml)'),
      h('option', { value: 'oz' }, 'US fluid ounces (oz)'),
    ),
    'volume_unit',
    'How amounts are shown and typed; they are stored in ml.',
  );
  const profileFields = [name, zone, target, defaultSubject, volume];
  const profileAlert = alertBox();
  const profileStatus = h('p', { class: 'notice', role: 'status', hidden: true });
  const saveBtn = h('button', { type: 'submit', class: 'primary' }, 'Save profile');
  let dirty = false;
  const fill = (u) => {
    name.input.value = u.display_name || '';
    zone.input.value = u.timezone;
    target.input.value = String(u.daily_target_ml);
    volume.input.value = u.volume_unit === 'oz' ? 'oz' : 'ml';
    // Only the owners of the default subject set its target (403 otherwise).
    target.input.disabled = !ownsDefault(u);
    replace(
      defaultSubject.input,
      ctx.subjects.items.map((x) =>
        h('option', { value: x.id, selected: x.id === u.default_subject_id }, `${x.name} (${x.role})`),
      ),
    );
    defaultSubject.row.hidden = ctx.subjects.items.length < 2;
    dirty = false;
  };
  profileFields.forEach((f) => f.input.addEventListener('input', () => (dirty = true)));
  const profileForm = h(
    'form',
    {
      class: 'card',
      novalidate: true,
      'aria-labelledby': 'profile-h',
      onsubmit: onSubmit({
        alert: profileAlert,
        fields: profileFields,
        button: saveBtn,
        status: profileStatus,
        send: () => {
          const body = { display_name: name.input.value.trim() || null, timezone: zone.input.value.trim() };
          if (volume.input.value !== (ctx.user.volume_unit || 'ml')) body.volume_unit = volume.input.value;
          const chosen = defaultSubject.input.value;
          if (chosen && chosen !== ctx.user.default_subject_id) body.default_subject_id = chosen;
          else if (!target.input.disabled)
            body.daily_target_ml = target.input.value === '' ? 0 : Number(target.input.value);
          return patch('/me', body);
        },
        done: ({ data }) => {
          ctx.setUser(data);
          fill(data);
          profileStatus.hidden = false;
          profileStatus.textContent = 'Saved.';
        },
      }),
    },
    h('h2', { id: 'profile-h' }, 'Profile'),
    h('p', { class: 'muted' }, ctx.user.email),
    profileAlert,
    name.row,
    zone.row,
    zoneList,
    defaultSubject.row,
    target.row,
    volume.row,
    saveBtn,
    profileStatus,
  );

  // ---- sessions ----
  const sessionList = h('ul', { class: 'items compact' });
  const sessionAlert = alertBox();
  async function loadSessions() {
    try {
      const { data } = await get('/auth/sessions');
      replace(
        sessionList,
        data.items.map((s) =>
          h(
            'li',
            { class: 'item' },
            h(
              'div',
              { class: 'item-main' },
              h(
                'strong',
                null,
                s.user_agent ? shortAgent(s.user_agent) : 'Unknown device',
                s.current ? h('span', { class: 'badge' }, 'this device') : null,
              ),
              h(
                'p',
                { class: 'muted' },
                `${s.ip || 'unknown address'} · signed in ${fmtDateTime(s.created_at, tz())} · last seen ${fmtDateTime(s.last_seen_at, tz())}`,
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
                  'aria-label': s.current ? 'Sign out this device' : `Revoke session from ${s.ip || 'unknown address'}`,
                  onclick: (e) =>
                    busy(e.currentTarget, async () => {
                      try {
                        await del(`/auth/sessions/${s.id}`);
                        if (s.current) ctx.signedOut('You are signed out.');
                        else loadSessions();
                      } catch (err) {
                        showProblem(sessionAlert, [], err);
                      }
                    }),
                },
                s.current ? 'Sign out' : 'Revoke',
              ),
            ),
          ),
        ),
      );
    } catch (err) {
      showProblem(sessionAlert, [], err);
    }
  }

  // ---- tokens ----
  const tokenName = field(
    'Name',
    h('input', { type: 'text', maxlength: 100, required: true, placeholder: 'e.g. kitchen tablet' }),
    'name',
  );
  const scopeRead = h('input', { type: 'checkbox', id: 'scope-read', checked: true });
  const scopeWrite = h('input', { type: 'checkbox', id: 'scope-write', checked: true });
  const expires = field(
    'Expires after (days, optional)',
    h('input', { type: 'number', min: 1, max: 365, inputmode: 'numeric' }),
    'expires_in_days',
  );
  // Optional restriction to some subjects (`subject_ids`): none ticked is every subject.
  const tokenSubjects = ctx.subjects.items.map((x, i) => ({
    id: x.id,
    box: h('input', { type: 'checkbox', id: `token-subject-${i}`, value: x.id }),
    name: x.name,
  }));
  const subjectNames = (ids) => ids.map((id) => (ctx.subjects.get(id) || { name: 'a subject you left' }).name);
  const tokenFields = [tokenName, expires];
  const tokenAlert = alertBox();
  const shown = h('div', { class: 'token-shown', hidden: true, role: 'status' });
  const tokenList = h('ul', { class: 'items compact' });
  const createTokenBtn = h('button', { type: 'submit', class: 'primary' }, 'Create token');
  const tokenForm = h(
    'form',
    {
      novalidate: true,
      class: 'token-form',
      onsubmit: onSubmit({
        alert: tokenAlert,
        fields: tokenFields,
        button: createTokenBtn,
        send: () => {
          const scopes = [scopeRead.checked && 'read', scopeWrite.checked && 'write'].filter(Boolean);
          const body = { name: tokenName.input.value.trim(), scopes };
          if (expires.input.value) body.expires_in_days = Number(expires.input.value);
          const only = tokenSubjects.filter((x) => x.box.checked).map((x) => x.id);
          if (only.length) body.subject_ids = only;
          return post('/tokens', body);
        },
        done: ({ data }) => {
          tokenName.input.value = '';
          expires.input.value = '';
          tokenSubjects.forEach((x) => (x.box.checked = false));
          const code = h('code', { class: 'secret' }, data.token);
          const copy = h(
            'button',
            {
              type: 'button',
              class: 'secondary',
              onclick: async () => {
                try {
                  await navigator.clipboard.writeText(data.token);
                  copy.textContent = 'Copied';
                } catch {
                  const r = document.createRange();
                  r.selectNodeContents(code);
                  getSelection().removeAllRanges();
                  getSelection().addRange(r);
                }
              },
            },
            'Copy',
          );
          replace(
            shown,
            h(
              'p',
              null,
              h('strong', null, `Token “${data.name}” created.`),
              ' Copy it now: it will not be shown again.',
            ),
            h('div', { class: 'row' }, code, copy),
          );
          shown.hidden = false;
          loadTokens();
        },
      }),
    },
    tokenAlert,
    tokenName.row,
    h(
      'fieldset',
      { class: 'scopes' },
      h('legend', null, 'Scopes'),
      h('div', { class: 'field check' }, scopeRead, h('label', { for: 'scope-read' }, 'read')),
      h('div', { class: 'field check' }, scopeWrite, h('label', { for: 'scope-write' }, 'write')),
    ),
    tokenSubjects.length
      ? h(
          'fieldset',
          { class: 'token-subjects' },
          h('legend', null, 'Only for these subjects (optional)'),
          h(
            'p',
            { class: 'hint' },
            'None ticked: every subject. Ticked: only those, and none of the account-wide actions (export, new subjects, invitations).',
          ),
          tokenSubjects.map((x) => h('div', { class: 'field check' }, x.box, h('label', { for: x.box.id }, x.name))),
        )
      : null,
    expires.row,
    createTokenBtn,
  );
  async function loadTokens() {
    try {
      const { data } = await get('/tokens');
      replace(
        tokenList,
        data.items.length
          ? data.items.map((t) =>
              h(
                'li',
                { class: 'item' },
                h(
                  'div',
                  { class: 'item-main' },
                  h('strong', null, t.name),
                  h('span', { class: 'badge' }, t.scopes.join(' + ')),
                  t.subject_ids
                    ? h('span', { class: 'badge' }, `only ${subjectNames(t.subject_ids).join(', ')}`)
                    : null,
                  h(
                    'p',
                    { class: 'muted' },
                    `created ${fmtDateTime(t.created_at, tz())} · ${t.expires_at ? `expires ${fmtDateTime(t.expires_at, tz())}` : 'no expiry'} · ${t.last_used_at ? `last used ${fmtDateTime(t.last_used_at, tz())}` : 'never used'}`,
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
                      'aria-label': `Revoke token ${t.name}`,
                      onclick: (e) =>
                        busy(e.currentTarget, async () => {
                          try {
                            await del(`/tokens/${t.id}`);
                            loadTokens();
                          } catch (err) {
                            showProblem(tokenAlert, [], err);
                          }
                        }),
                    },
                    'Revoke',
                  ),
                ),
              ),
            )
          : h('li', { class: 'muted' }, 'No access tokens.'),
      );
    } catch (err) {
      showProblem(tokenAlert, [], err);
    }
  }

  // ---- password ----
  const currentPw = field(
    'Current password',
    h('input', { type: 'password', autocomplete: 'current-password', required: true }),
    'current_password',
  );
  const newPw = field(
    'New password',
    h('input', { type: 'password', autocomplete: 'new-password', required: true, minlength: 12, maxlength: 128 }),
    'new_password',
    'At least 12 characters. Your other devices will be signed out.',
  );
  const revokeTokens = h('input', { type: 'checkbox', id: 'revoke-tokens', name: 'revoke_tokens' });
  const pwFields = [currentPw, newPw];
  const pwAlert = alertBox();
  const pwStatus = h('p', { class: 'notice', role: 'status', hidden: true });
  const pwBtn = h('button', { type: 'submit', class: 'primary' }, 'Change password');
  let revoking = false; // what the request in flight asked for
  const passwordForm = h(
    'form',
    {
      class: 'card password-form',
      novalidate: true,
      'aria-labelledby': 'password-h',
      onsubmit: onSubmit({
        alert: pwAlert,
        fields: pwFields,
        button: pwBtn,
        status: pwStatus,
        send: () => {
          revoking = revokeTokens.checked;
          return post('/auth/password', {
            current_password: currentPw.input.value,
            new_password: newPw.input.value,
            revoke_tokens: revoking,
          });
        },
        done: () => {
          currentPw.input.value = '';
          newPw.input.value = '';
          pwStatus.hidden = false;
          pwStatus.textContent = revoking
            ? 'Password changed. Your other devices were signed out and every access token was revoked.'
            : 'Password changed. Your other devices were signed out.';
          revokeTokens.checked = false;
          loadSessions();
          if (revoking) loadTokens();
        },
        messages: { 403: 'The current password is wrong.' },
      }),
    },
    h('h2', { id: 'password-h' }, 'Password'),
    pwAlert,
    currentPw.row,
    newPw.row,
    h(
      'div',
      { class: 'field check' },
      revokeTokens,
      h('label', { for: 'revoke-tokens' }, 'Also revoke every access token'),
    ),
    pwBtn,
    pwStatus,
  );

  // ---- delete account ----
  const delPassword = field(
    'Password',
    h('input', { type: 'password', autocomplete: 'current-password', required: true }),
    'password',
  );
  const delConfirm = h('input', { type: 'checkbox', id: 'delete-confirm' });
  // Named before deleting: the subjects the user owns alone that others are members of.
  const shared = h('p', { class: 'alert shared-warning', role: 'note', hidden: true });
  async function loadShared() {
    const names = [];
    for (const s of ctx.subjects.items.filter((x) => x.role === 'owner' && x.member_count > 1)) {
      try {
        const { data } = await get(`/subjects/${s.id}/members`);
        if (!data.items.some((m) => m.role === 'owner' && m.user_id !== ctx.user.id)) names.push(s.name);
      } catch {
        /* gone meanwhile */
      }
    }
    shared.hidden = names.length === 0;
    const one = names.length === 1;
    shared.textContent = `The other members of their circle lose ${names.join(', ')}: you are ${one ? 'its' : 'their'} only owner. Make one of them an owner first to keep ${one ? 'it' : 'them'} for them.`;
  }
  const delAlert = alertBox();
  const delBtn = h('button', { type: 'submit', class: 'danger' }, 'Delete my account');
  const deleteForm = h(
    'form',
    {
      class: 'card danger-zone',
      novalidate: true,
      'aria-labelledby': 'delete-h',
      onsubmit: onSubmit({
        alert: delAlert,
        fields: [delPassword],
        button: delBtn,
        check: () => {
          if (delConfirm.checked) return null;
          delConfirm.focus();
          return { problem: { detail: 'Tick the box to confirm.' } };
        },
        send: () => del('/me', { body: { password: delPassword.input.value } }),
        done: () => ctx.signedOut('Your account and all its data were deleted.'),
        messages: { 403: 'Wrong password.' },
      }),
    },
    h('h2', { id: 'delete-h' }, 'Delete account'),
    h('p', null, 'This deletes your profile, notes, feedings and tokens for good and signs out every device.'),
    h(
      'p',
      null,
      'Subjects of which you are the only owner are deleted with their records, also for the other members of their circle. In subjects with another owner, your records stay, without your name.',
    ),
    shared,
    delAlert,
    delPassword.row,
    h(
      'div',
      { class: 'field check' },
      delConfirm,
      h('label', { for: 'delete-confirm' }, 'I understand that this cannot be undone'),
    ),
    delBtn,
  );

  const off = ctx.live.on('event', (m) => {
    if (m.event === 'profile.updated' && m.data && !dirty) {
      ctx.setUser({ ...ctx.user, ...m.data });
      fill(ctx.user);
    }
  });

  const el = h(
    'section',
    { class: 'profile-page' },
    h('div', { class: 'page-head' }, h('h1', null, 'Profile')),
    h(
      'div',
      { class: 'two-col' },
      h(
        'div',
        null,
        profileForm,
        h(
          'section',
          { class: 'card', 'aria-labelledby': 'export-h' },
          h('h2', { id: 'export-h' }, 'Export'),
          h('p', null, 'Everything you stored, as one JSON file.'),
          h(
            'a',
            { class: 'button-link', href: '/api/v1/me/export', download: 'pulse-export.json' },
            'Download my data',
          ),
        ),
        passwordForm,
        deleteForm,
      ),
      h(
        'div',
        null,
        h(
          'section',
          { class: 'card', 'aria-labelledby': 'sessions-h' },
          h('h2', { id: 'sessions-h' }, 'Signed-in devices'),
          sessionAlert,
          sessionList,
        ),
        h(
          'section',
          { class: 'card', 'aria-labelledby': 'tokens-h' },
          h('h2', { id: 'tokens-h' }, 'Access tokens'),
          h('p', { class: 'muted' }, 'For scripts and devices: send as “Authorization: Bearer …”.'),
          tokenForm,
          shown,
          tokenList,
        ),
      ),
    ),
  );
  return {
    el,
    mounted() {
      fill(ctx.user);
      get('/me')
        .then(({ data }) => {
          ctx.setUser(data);
          if (!dirty) fill(data);
        })
        .catch(() => {});
      loadSessions();
      loadTokens();
      loadShared();
    },
    destroy: off,
  };
}

function shortAgent(ua) {
  const m = ua.match(/(Firefox|Edg|Chrome|Safari|curl|node)[/ ]([\d.]+)/);
  const os = ua.match(/\((?:[^;)]*;\s*)?([^;)]+)/);
  if (!m) return ua.slice(0, 60);
  const browser = { Edg: 'Edge' }[m[1]] || m[1];
  return `${browser} ${m[2].split('.')[0]}${os ? ` on ${os[1]}` : ''}`;
}
