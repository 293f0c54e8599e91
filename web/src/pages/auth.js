// Sign in and create an account. Both set the session cookie; the response's `token` is not
// kept (the browser uses the cookie only).
import { post } from '../api.js';
import { alertBox, field, h, onSubmit } from '../dom.js';

function browserZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch {
    return 'UTC';
  }
}

function authForm(ctx, { register }) {
  const email = field(
    'Email',
    h('input', { type: 'email', autocomplete: 'email', required: true, inputmode: 'email' }),
    'email',
  );
  const password = field(
    'Password',
    h('input', {
      type: 'password',
      autocomplete: register ? 'new-password' : 'current-password',
      required: true,
      minlength: register ? 12 : null,
      maxlength: 128,
    }),
    'password',
    register ? '12 to 128 characters.' : null,
  );
  const name = register
    ? field('Name (optional)', h('input', { type: 'text', autocomplete: 'name', maxlength: 100 }), 'display_name')
    : null;
  const fields = [email, password, name].filter(Boolean);
  const alert = alertBox();
  const flash = ctx.takeFlash();
  const submit = h('button', { type: 'submit', class: 'primary big' }, register ? 'Create account' : 'Sign in');
  const form = h(
    'form',
    {
      class: 'card auth',
      novalidate: true,
      onsubmit: onSubmit({
        alert,
        fields,
        button: submit,
        send: () => {
          const body = { email: email.input.value.trim(), password: password.input.value };
          if (register) {
            if (name.input.value.trim()) body.display_name = name.input.value.trim();
            body.timezone = browserZone();
          }
          return post(register ? '/auth/register' : '/auth/login', body, { auth: false });
        },
        done: (res) => ctx.signedIn(res.data.user),
        messages: { 401: 'Wrong email or password.', 409: 'An account with this email already exists.' },
      }),
    },
    flash ? h('p', { class: 'notice', role: 'status' }, flash) : null,
    alert,
    fields.map((f) => f.row),
    submit,
    register
      ? h('p', null, 'Already have an account? ', h('a', { href: '/login', 'data-link': true }, 'Sign in'))
      : h('p', null, 'New here? ', h('a', { href: '/register', 'data-link': true }, 'Create an account')),
  );
  const el = h(
    'section',
    { class: 'auth-page' },
    h('p', { class: 'brand big-brand' }, h('img', { src: '/favicon.svg', alt: '', width: 36, height: 36 }), 'Pulse'),
    h('h1', null, register ? 'Create an account' : 'Sign in'),
    form,
  );
  return { el, mounted: () => email.input.focus() };
}

export const loginPage = (ctx) => authForm(ctx, { register: false });
export const registerPage = (ctx) => authForm(ctx, { register: true });
