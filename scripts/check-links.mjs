#!/usr/bin/env node
// Checks the relative links of the repository's Markdown files: every `[text](target)`,
// `![alt](target)`, `[id]: target` and HTML `href`/`src` whose target is not a URL with a
// scheme (http:, https:, mailto:, ... are not fetched) must name a file or folder inside the
// repository, and a `#fragment` on a Markdown file must name one of its headings (GitHub's
// slugs) or an `id`/`name` anchor in it. Code spans and fenced code blocks are skipped.
//
//   node scripts/check-links.mjs [file.md ...]   default: every Markdown file git tracks,
//                                                 plus the docs/ ones not yet added
// Prints each broken link as file:line and exits 1 if there is any (tests/docs runs it in
// `make test`).
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

// The Markdown files to check: tracked ones and docs/*.md (a new file counts before `git add`),
// but not templates (docs/api.template.md: docs/api.md is made from it and checked).
export function markdownFiles() {
  let tracked = [];
  try {
    tracked = execFileSync('git', ['ls-files', '-z', '--', '*.md'], { cwd: ROOT, encoding: 'utf8' }).split('\0').filter(Boolean);
  } catch { /* not a git checkout: docs/ and the known files only */ }
  const docs = existsSync(path.join(ROOT, 'docs')) ? readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`) : [];
  const known = ['README.md', 'SECURITY.md', 'deploy/README.md', 'web/README.md'].filter((f) => existsSync(path.join(ROOT, f)));
  // a template's fragments point into the file generated from it, which is checked instead
  return [...new Set([...tracked, ...docs, ...known])].filter((f) => !f.includes('node_modules/') && !f.endsWith('.template.md')).sort();
}

// Text with fenced code blocks and code spans blanked out (line numbers kept).
function withoutCode(text) {
  const lines = text.split('\n');
  let fence = null;
  for (let i = 0; i < lines.length; i++) {
    const m = /^\s*(`{3,}|~{3,})/.exec(lines[i]);
    if (fence) {
      if (m && m[1][0] === fence[0] && m[1].length >= fence.length) fence = null;
      lines[i] = '';
    } else if (m) {
      fence = m[1];
      lines[i] = '';
    }
  }
  // code spans: a run of backquotes up to the same run (may cross a line break)
  return lines.join('\n').replace(/(`+)[\s\S]*?\1/g, (s) => s.replace(/[^\n]/g, ' '));
}

// GitHub's heading anchors: lower case, punctuation dropped, spaces to '-', repeats numbered.
export function anchorsOf(text) {
  const anchors = new Set();
  const seen = new Map();
  let fence = null;
  for (const line of text.split('\n')) {
    const f = /^\s*(`{3,}|~{3,})/.exec(line);
    if (fence) { if (f && f[1][0] === fence[0]) fence = null; continue; }
    if (f) { fence = f[1]; continue; }
    const h = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (h) {
      const plain = h[1]
        .replace(/<[^>]*>/g, '') // inline HTML (anchors) adds nothing to the text
        .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1') // links keep their text
        .toLowerCase()
        .replace(/[^\p{L}\p{N}\s_-]/gu, '')
        .replace(/\s/g, '-');
      const n = seen.get(plain) ?? 0;
      seen.set(plain, n + 1);
      anchors.add(n ? `${plain}-${n}` : plain);
    }
    for (const m of line.matchAll(/<a\s[^>]*(?:id|name)="([^"]+)"/g)) anchors.add(m[1]);
  }
  return anchors;
}

function targetsOf(text) {
  const clean = withoutCode(text);
  const out = [];
  const lineOf = (index) => clean.slice(0, index).split('\n').length;
  // [text](target "title") and ![alt](target); the text may hold one level of brackets
  for (const m of clean.matchAll(/!?\[(?:[^\][]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) out.push({ target: m[1], line: lineOf(m.index) });
  // [id]: target
  for (const m of clean.matchAll(/^\s{0,3}\[[^\]]+\]:\s+<?(\S+?)>?(?:\s.*)?$/gm)) out.push({ target: m[1], line: lineOf(m.index) });
  // HTML
  for (const m of clean.matchAll(/<(?:a|img)\s[^>]*(?:href|src)="([^"]+)"/g)) out.push({ target: m[1], line: lineOf(m.index) });
  return out;
}

// Broken links of the given files (paths relative to root): [{file, line, target, why}].
export function brokenLinks(files = markdownFiles(), { root = ROOT } = {}) {
  const broken = [];
  const anchorCache = new Map();
  const anchorsFor = (abs) => {
    if (!anchorCache.has(abs)) anchorCache.set(abs, anchorsOf(readFileSync(abs, 'utf8')));
    return anchorCache.get(abs);
  };
  for (const file of files) {
    const abs = path.join(root, file);
    for (const { target, line } of targetsOf(readFileSync(abs, 'utf8'))) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('//')) continue; // a URL: not fetched
      const bad = (why) => broken.push({ file, line, target, why });
      const [pathPart, fragment] = target.split('#', 2);
      let decoded;
      try { decoded = decodeURIComponent(pathPart.split('?')[0]); } catch { bad('malformed percent-encoding'); continue; }
      const dest = decoded === '' ? abs : decoded.startsWith('/') ? path.join(root, decoded) : path.resolve(path.dirname(abs), decoded);
      const rel = path.relative(root, dest);
      if (rel.startsWith('..') || path.isAbsolute(rel)) { bad('points outside the repository'); continue; }
      if (!existsSync(dest)) { bad('no such file'); continue; }
      if (fragment !== undefined && statSync(dest).isFile() && dest.endsWith('.md') && !anchorsFor(dest).has(decodeURIComponent(fragment))) {
        bad(`no heading or anchor #${fragment} in ${rel}`);
      }
    }
  }
  return broken;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const files = args.length ? args.map((f) => path.relative(ROOT, path.resolve(f))) : markdownFiles();
  const broken = brokenLinks(files);
  for (const b of broken) console.error(`${b.file}:${b.line}: ${b.target}: ${b.why}`);
  console.log(`${files.length} Markdown files, ${broken.length} broken links`);
  process.exit(broken.length ? 1 : 0);
}
