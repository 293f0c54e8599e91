#!/usr/bin/env node
// Renders docs/api.md, the API reference of the repository, from three sources:
//   docs/api.template.md   the hand-written prose, with marker lines where generated parts go
//   server/ops/openapi.json the OpenAPI document the server serves (every route, body, answer)
//   .env.example           every setting with its default (a unit test keeps it equal to
//                          server/config.c's table)
// Markers, each alone on a line of the template:
//   <!-- api-docs: route-index -->  a table of every route
//   <!-- api-docs: routes -->       every operation: credentials, parameters, body, answers
//   <!-- api-docs: schemas -->      every schema of components.schemas, field by field
//   <!-- api-docs: settings -->     the settings of .env.example, group by group
// The prose is checked against the document too: a route it names in backquotes
// (`GET /api/v1/notes/{id}`) must be one the document has.
//
//   node scripts/api-docs.mjs           writes docs/api.md
//   node scripts/api-docs.mjs --check   exits 1 when docs/api.md is not what it would write
//                                       (tests/docs runs this in `make test`)
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const OUTPUT = path.join(ROOT, 'docs/api.md');
const TEMPLATE = path.join(ROOT, 'docs/api.template.md');
const OPENAPI = path.join(ROOT, 'server/ops/openapi.json');
const ENV_EXAMPLE = path.join(ROOT, '.env.example');

const METHODS = ['get', 'head', 'post', 'put', 'patch', 'delete', 'options'];

// ---- text helpers ------------------------------------------------------------------------

// One table cell: no line breaks, no unescaped pipes.
const cell = (s) => String(s ?? '').replace(/\s*\n\s*/g, ' ').replace(/\|/g, '\\|').trim();
const code = (s) => (String(s).includes('`') ? `\`\` ${s} \`\`` : `\`${s}\``);
const json = (v) => code(JSON.stringify(v));

function table(header, rows) {
  if (!rows.length) return '';
  return [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`)].join('\n');
}

// ---- the OpenAPI document ----------------------------------------------------------------

function resolver(doc) {
  return (obj) => {
    let o = obj;
    const seen = new Set();
    while (o && o.$ref) {
      if (seen.has(o.$ref)) throw new Error(`circular $ref ${o.$ref}`);
      seen.add(o.$ref);
      const parts = o.$ref.replace(/^#\//, '').split('/');
      let t = doc;
      for (const p of parts) t = t?.[p];
      if (!t) throw new Error(`unresolved $ref ${o.$ref}`);
      // siblings of $ref (description, readOnly, ...) override what it points to
      const { $ref, ...rest } = o;
      o = { ...t, ...rest };
    }
    return o;
  };
}

const opAnchor = (op) => `op-${op.operationId}`;
const schemaAnchor = (name) => `schema-${name}`;
const refName = (ref) => ref.split('/').pop();

// A schema's type in words, with links to named schemas.
function typeOf(s, doc) {
  if (!s) return '';
  if (s.$ref) return `[${refName(s.$ref)}](#${schemaAnchor(refName(s.$ref))})`;
  if (s.const !== undefined) return json(s.const);
  if (s.oneOf) return s.oneOf.map((x) => typeOf(x, doc)).join(' or ');
  if (s.anyOf) return s.anyOf.map((x) => typeOf(x, doc)).join(' or ');
  if (s.allOf) return s.allOf.map((x) => (x.$ref ? typeOf(x, doc) : x.properties ? `{${Object.keys(x.properties).join(', ')}}` : typeOf(x, doc))).join(' + ');
  const inferred = s.enum && s.enum.every((e) => typeof e === 'string') ? 'string' : [];
  const types = [].concat(s.type ?? inferred);
  const words = types.map((t) => {
    if (t === 'array') return `array of ${typeOf(s.items, doc) || 'anything'}`;
    if (t === 'string' && s.format) return `string (${s.format})`;
    return t;
  });
  if (s.enum) return `${words.filter((w) => w !== 'null').join(' or ')}: one of ${s.enum.map((e) => (e === null ? 'null' : code(e))).join(', ')}`;
  return words.join(' or ') || (s.properties ? 'object' : 'any');
}

// The constraints of a schema in words.
function constraints(s) {
  const out = [];
  const range = (lo, hi, unit) => {
    if (lo !== undefined && hi !== undefined) out.push(`${lo}..${hi}${unit}`);
    else if (lo !== undefined) out.push(`at least ${lo}${unit}`);
    else if (hi !== undefined) out.push(`at most ${hi}${unit}`);
  };
  range(s.minLength, s.maxLength, ' characters');
  range(s.minimum, s.maximum, '');
  range(s.minItems, s.maxItems, ' items');
  if (s.exclusiveMinimum !== undefined) out.push(`over ${s.exclusiveMinimum}`);
  if (s.exclusiveMaximum !== undefined) out.push(`under ${s.exclusiveMaximum}`);
  if (s.uniqueItems) out.push('no repeats');
  if (s.maxProperties !== undefined) out.push(`at most ${s.maxProperties} properties`);
  if (s.pattern) out.push(`matches ${code(s.pattern)}`);
  if (s.default !== undefined) out.push(`default ${json(s.default)}`);
  if (s.readOnly) out.push('read-only');
  if (s.writeOnly) out.push('write-only');
  if (s.additionalProperties === false) out.push('no other fields');
  return out.join('; ');
}

// Rows of an object's fields, nested objects flattened with dotted names.
function fieldRows(s, doc, resolve, prefix = '') {
  const rows = [];
  const required = new Set(s.required || []);
  for (const [name, raw] of Object.entries(s.properties || {})) {
    const p = resolve(raw);
    const desc = [constraints(raw.$ref ? { ...raw, ...stripped(p) } : p), raw.description ?? (raw.$ref ? '' : p.description)].filter(Boolean).join('. ');
    rows.push([code(prefix + name), typeOf(raw.$ref ? raw : p, doc), required.has(name) ? 'yes' : '', desc]);
    if (!raw.$ref && p.properties) rows.push(...fieldRows(p, doc, resolve, `${prefix}${name}.`));
    if (!raw.$ref && p.items && !p.items.$ref && p.items.properties) rows.push(...fieldRows(p.items, doc, resolve, `${prefix}${name}[].`));
  }
  return rows;
}

// The constraint keywords of a resolved schema (what a $ref brings along).
function stripped(p) {
  const keep = {};
  for (const k of ['minLength', 'maxLength', 'minimum', 'maximum', 'minItems', 'maxItems', 'uniqueItems', 'pattern']) {
    if (p[k] !== undefined) keep[k] = p[k];
  }
  return keep;
}

function credentials(op) {
  const sec = op.security;
  if (!sec || sec.length === 0) return 'none';
  const parts = [];
  for (const req of sec) {
    const names = Object.keys(req);
    if (names.length === 0) parts.push('none');
    for (const n of names) {
      if (n === 'sessionCookie') parts.push('the session cookie');
      else if (n === 'metricsToken') parts.push('`Authorization: Bearer <PULSE_METRICS_TOKEN>` when that is set');
      else if (n === 'bearerAuth') {
        const pat = op['x-personal-access-token'];
        const scopes = req[n];
        if (pat === 'refused') parts.push('a session token as `Authorization: Bearer` (personal access tokens: 403)');
        else parts.push(`\`Authorization: Bearer\` with a session token or a personal access token with ${scopes.map(code).join(' and ') || 'any scope'}`);
      } else parts.push(code(n));
    }
  }
  if (parts.length === 2 && parts[0] === 'none') return `none, or ${parts[1]}`;
  return parts.join('; or ');
}

function operations(doc) {
  const ops = [];
  for (const [p, item] of Object.entries(doc.paths)) {
    for (const m of METHODS) {
      if (item[m]) ops.push({ path: p, method: m.toUpperCase(), op: item[m], shared: item.parameters || [] });
    }
  }
  return ops;
}

function routeIndex(doc) {
  return table(['method', 'path', 'what', 'credentials'], operations(doc).map(({ path: p, method, op }) => [
    method, `[${code(p)}](#${opAnchor(op)})`, op.summary, credentials(op),
  ]));
}

function renderOperation({ path: p, method, op, shared }, doc, resolve) {
  const out = [`#### <a id="${opAnchor(op)}"></a>\`${method} ${p}\``, '', `**${op.summary}.**`];
  if (op.description) out.push('', op.description);
  out.push('', `**Credentials**: ${credentials(op)}.`);
  const params = [...shared, ...(op.parameters || [])].map(resolve);
  if (params.length) {
    out.push('', '**Parameters**:', '', table(['name', 'in', 'type', 'required', 'meaning'], params.map((q) => {
      const s = q.schema ? resolve(q.schema) : {};
      return [code(q.name), q.in, typeOf(q.schema?.$ref ? q.schema : s, doc), q.required ? 'yes' : '', [constraints(s), q.description].filter(Boolean).join('. ')];
    })));
  }
  if (op.requestBody) {
    const b = resolve(op.requestBody);
    const types = Object.entries(b.content || {}).map(([ct, c]) => `${code(ct)} ${typeOf(c.schema, doc)}`).join(', ');
    out.push('', `**Body** (${b.required ? 'required' : 'optional'}): ${types}.${b.description ? ` ${b.description}` : ''}`);
  }
  const rows = Object.entries(op.responses || {}).map(([status, raw]) => {
    const r = resolve(raw);
    const body = Object.entries(r.content || {}).map(([ct, c]) => `${typeOf(c.schema, doc)} (${code(ct)})`).join(', ');
    const headers = Object.keys(r.headers || {}).filter((h) => !h.startsWith('RateLimit-'));
    const limited = Object.keys(r.headers || {}).some((h) => h.startsWith('RateLimit-'));
    const notes = [raw.description ?? r.description];
    if (headers.length) notes.push(`Headers: ${headers.map(code).join(', ')}${limited ? ', `RateLimit-*`' : ''}.`);
    else if (limited) notes.push('Headers: `RateLimit-*`.');
    return [status, body, notes.filter(Boolean).join(' ')];
  });
  out.push('', '**Answers**:', '', table(['status', 'body', 'meaning'], rows));
  return out.join('\n');
}

function routes(doc) {
  const resolve = resolver(doc);
  const ops = operations(doc);
  const out = [];
  const tags = (doc.tags || []).map((t) => t.name);
  for (const o of ops) for (const t of o.op.tags || ['other']) if (!tags.includes(t)) tags.push(t);
  for (const tag of tags) {
    const mine = ops.filter((o) => (o.op.tags || ['other']).includes(tag));
    if (!mine.length) continue;
    const t = (doc.tags || []).find((x) => x.name === tag);
    out.push(`### ${tag}`, '');
    if (t?.description) out.push(t.description, '');
    for (const o of mine) out.push(renderOperation(o, doc, resolve), '');
  }
  return out.join('\n').trimEnd();
}

function schemas(doc) {
  const resolve = resolver(doc);
  const out = [];
  for (const [name, s] of Object.entries(doc.components?.schemas || {})) {
    out.push(`#### <a id="${schemaAnchor(name)}"></a>${name}`, '');
    if (s.description) out.push(s.description, '');
    const own = s.allOf ? s.allOf.map(resolve).reduce((acc, x) => ({ ...acc, ...x, properties: { ...acc.properties, ...x.properties }, required: [...(acc.required || []), ...(x.required || [])] }), {}) : s;
    if (own.properties) {
      if (s.allOf) out.push(`${typeOf(s, doc)}:`, '');
      out.push(table(['field', 'type', 'required', 'meaning'], fieldRows(own, doc, resolve)), '');
    } else {
      const c = constraints(s);
      out.push(`${typeOf(s, doc)}${c ? `; ${c}` : ''}.`, '');
    }
    if (s.examples) out.push(`Example${s.examples.length > 1 ? 's' : ''}: ${s.examples.map(json).join(', ')}.`, '');
  }
  return out.join('\n').trimEnd();
}

// ---- .env.example ------------------------------------------------------------------------

function settings(text) {
  const lines = text.split('\n');
  let i = 0;
  while (i < lines.length && lines[i].startsWith('#')) i++; // the file's own preamble
  const groups = [];
  let group = null;
  let comment = [];
  let pending = []; // variables sharing the comment above them
  const flush = () => {
    for (const v of pending) group.rows.push([code(v.name), v.value === '' ? '(empty)' : code(v.value), comment.join(' ')]);
    pending = [];
  };
  for (; i < lines.length; i++) {
    const l = lines[i].trim();
    const g = /^# --- (.*) ---$/.exec(l);
    if (g) {
      if (group) flush();
      group = { name: g[1], rows: [] };
      groups.push(group);
      comment = [];
    } else if (l.startsWith('#')) {
      if (pending.length) { flush(); comment = []; }
      comment.push(l.replace(/^#\s?/, ''));
    } else if (/^[A-Z][A-Z0-9_]*=/.test(l)) {
      if (!group) { group = { name: 'settings', rows: [] }; groups.push(group); }
      const eq = l.indexOf('=');
      pending.push({ name: l.slice(0, eq), value: l.slice(eq + 1) });
    } else if (l === '') {
      if (group) flush();
      comment = [];
    }
  }
  if (group) flush();
  return groups.map((g) => `### ${g.name[0].toUpperCase()}${g.name.slice(1)}\n\n${table(['variable', 'default', 'meaning'], g.rows)}`).join('\n\n');
}

// ---- the document ------------------------------------------------------------------------

// Routes the prose names in backquotes ("`GET /api/v1/notes`") that the document lacks.
function unknownRoutes(template, doc) {
  const known = new Set(operations(doc).map((o) => `${o.method} ${o.path}`));
  for (const o of operations(doc)) if (o.method === 'GET') known.add(`HEAD ${o.path}`);
  const missing = [];
  for (const m of template.matchAll(/`(GET|HEAD|POST|PUT|PATCH|DELETE) (\/[^`\s?]*)[^`]*`/g)) {
    const key = `${m[1]} ${m[2].replace(/\{[^}]+\}/g, '{id}')}`;
    const normalised = new Set([...known].map((k) => k.replace(/\{[^}]+\}/g, '{id}')));
    if (!normalised.has(key)) missing.push(`${m[1]} ${m[2]}`);
  }
  return [...new Set(missing)];
}

export function render({ template = readFileSync(TEMPLATE, 'utf8'), doc = JSON.parse(readFileSync(OPENAPI, 'utf8')), env = readFileSync(ENV_EXAMPLE, 'utf8') } = {}) {
  const missing = unknownRoutes(template, doc);
  if (missing.length) throw new Error(`docs/api.template.md names routes that server/ops/openapi.json does not have: ${missing.join(', ')}`);
  const parts = {
    'route-index': () => routeIndex(doc),
    routes: () => routes(doc),
    schemas: () => schemas(doc),
    settings: () => settings(env),
  };
  const used = new Set();
  const body = template.replace(/^<!-- api-docs: ([a-z-]+) -->$/gm, (_, name) => {
    if (!parts[name]) throw new Error(`docs/api.template.md: unknown marker ${name}`);
    used.add(name);
    return parts[name]();
  });
  const unused = Object.keys(parts).filter((p) => !used.has(p));
  if (unused.length) throw new Error(`docs/api.template.md lacks the markers ${unused.join(', ')}`);
  const banner = '<!-- Generated by scripts/api-docs.mjs from docs/api.template.md, server/ops/openapi.json and .env.example: edit those and run `node scripts/api-docs.mjs`. -->\n';
  return `${banner}${body.replace(/\n{3,}/g, '\n\n').trimEnd()}\n`;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const text = render();
  if (process.argv.includes('--check')) {
    let current = '';
    try { current = readFileSync(OUTPUT, 'utf8'); } catch { /* missing: out of date */ }
    if (current !== text) {
      console.error('docs/api.md is out of date with docs/api.template.md, server/ops/openapi.json or .env.example: run `node scripts/api-docs.mjs`');
      process.exit(1);
    }
    console.log('docs/api.md is up to date');
  } else {
    writeFileSync(OUTPUT, text);
    console.log(`wrote ${path.relative(process.cwd(), OUTPUT)} (${text.length} bytes)`);
  }
}
