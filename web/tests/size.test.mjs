// The built UI (web/dist, from `npm run build`): the first page load stays under 150 KB
// compressed, every compressible file has its .gz sibling, and index.html has no inline
// script or style (the CSP allows none).
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { it } from 'node:test';
import { gzipSync } from 'node:zlib';

const DIST = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../dist');
const BUDGET = 150 * 1024;

function walk(dir) {
  return readdirSync(dir).flatMap((n) => {
    const p = path.join(dir, n);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}

// What the browser fetches before the first paint: index.html and the local files it links.
export function firstLoad() {
  const html = readFileSync(path.join(DIST, 'index.html'), 'utf8');
  const refs = [...html.matchAll(/(?:src|href)="(\/[^"]+)"/g)].map((m) => m[1]);
  const files = ['/index.html', ...new Set(refs)];
  return files.map((url) => {
    const file = path.join(DIST, url);
    const raw = statSync(file).size;
    const gz = existsSync(`${file}.gz`) ? statSync(`${file}.gz`).size : gzipSync(readFileSync(file)).length;
    return { url, raw, gz: Math.min(raw, gz) };
  });
}

it('has been built', () => {
  assert.ok(existsSync(path.join(DIST, 'index.html')), 'web/dist/index.html is missing: run `npm run build` first');
});

it(`loads the first page in under ${BUDGET / 1024} KB compressed`, (t) => {
  const files = firstLoad();
  const gz = files.reduce((n, f) => n + f.gz, 0);
  const raw = files.reduce((n, f) => n + f.raw, 0);
  for (const f of files) t.diagnostic(`${f.url}: ${f.raw} B, ${f.gz} B gzip`);
  t.diagnostic(
    `first load: ${(gz / 1024).toFixed(1)} KB compressed (${(raw / 1024).toFixed(1)} KB uncompressed), ${files.length} files`,
  );
  assert.ok(
    files.some((f) => f.url.endsWith('.js')),
    'index.html links no script',
  );
  assert.ok(gz < BUDGET, `first load is ${gz} bytes compressed`);
});

it('has a smaller .gz next to every compressible file', () => {
  const files = walk(DIST).filter((f) => /\.(html|js|css|svg|json)$/.test(f));
  assert.ok(files.length >= 3);
  for (const f of files) {
    assert.ok(existsSync(`${f}.gz`), `${path.relative(DIST, f)} has no .gz`);
    assert.ok(statSync(`${f}.gz`).size < statSync(f).size);
    assert.ok(statSync(`${f}.gz`).mtimeMs >= statSync(f).mtimeMs, `${f}.gz is older than its file`);
  }
});

it('names the bundled assets by content hash and has no inline script or style', () => {
  const html = readFileSync(path.join(DIST, 'index.html'), 'utf8');
  for (const m of html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g))
    assert.match(m[1], /-[A-Za-z0-9_-]{8,}\.(js|css)$/);
  assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, 'inline <script>');
  assert.doesNotMatch(html, /<style|\sstyle=/, 'inline style');
});
