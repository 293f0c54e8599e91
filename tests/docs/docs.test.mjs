// The documentation stays true to the repository (`make test`'s docs stage):
// - docs/api.md is exactly what scripts/api-docs.mjs renders from docs/api.template.md,
//   server/ops/openapi.json and .env.example (so a route, schema or setting changed without
//   regenerating it fails here), and the prose names no route the OpenAPI document lacks;
// - every relative link of the Markdown files (README.md, docs/, deploy/, web/, SECURITY.md,
//   ...) names a file of the repository, and a #fragment into Markdown names a heading.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';

import { OUTPUT, render } from '../../scripts/api-docs.mjs';
import { brokenLinks, markdownFiles } from '../../scripts/check-links.mjs';

describe('docs/api.md', () => {
  it('is what scripts/api-docs.mjs renders from its sources (run `node scripts/api-docs.mjs`)', () => {
    const want = render();
    const have = readFileSync(OUTPUT, 'utf8');
    if (have !== want) {
      const a = have.split('\n');
      const b = want.split('\n');
      let i = 0;
      while (i < a.length && i < b.length && a[i] === b[i]) i++;
      assert.fail(`docs/api.md is out of date from line ${i + 1}:\n  have: ${a[i] ?? '(end)'}\n  want: ${b[i] ?? '(end)'}\nrun \`node scripts/api-docs.mjs\``);
    }
  });

  it('refuses prose that names a route the OpenAPI document lacks', () => {
    const template = '# x\n\n`DELETE /api/v1/notes` and `GET /api/v1/nowhere/{id}`\n\n<!-- api-docs: route-index -->\n<!-- api-docs: routes -->\n<!-- api-docs: schemas -->\n<!-- api-docs: settings -->\n';
    assert.throws(() => render({ template }), /DELETE \/api\/v1\/notes, GET \/api\/v1\/nowhere\/\{id\}/);
  });

  it('documents every route and schema of the OpenAPI document', () => {
    const doc = JSON.parse(readFileSync(new URL('../../server/ops/openapi.json', import.meta.url), 'utf8'));
    const text = readFileSync(OUTPUT, 'utf8');
    for (const [p, item] of Object.entries(doc.paths)) {
      for (const [m, op] of Object.entries(item)) {
        if (m === 'parameters') continue;
        assert.ok(text.includes(`<a id="op-${op.operationId}"></a>\`${m.toUpperCase()} ${p}\``), `${m.toUpperCase()} ${p}`);
      }
    }
    for (const name of Object.keys(doc.components.schemas)) assert.ok(text.includes(`<a id="schema-${name}"></a>`), name);
  });
});

describe('Markdown links', () => {
  it('every relative link resolves inside the repository', () => {
    const files = markdownFiles();
    for (const f of ['README.md', 'SECURITY.md', 'deploy/README.md', 'web/README.md', 'docs/api.md', 'docs/architecture.md']) {
      assert.ok(files.includes(f), `${f} is checked`);
    }
    const broken = brokenLinks(files);
    assert.deepEqual(broken.map((b) => `${b.file}:${b.line}: ${b.target}: ${b.why}`), []);
  });

  it('finds broken links, anchors and escapes from the repository', () => {
    // the checker itself, on a tree of its own making
    const root = mkdtempSync(path.join(tmpdir(), 'pulse-links-'));
    try {
      writeFileSync(path.join(root, 'a.md'), [
        '# Title', '## Second `code` heading', '<a id="custom"></a>',
        '[ok](a.md) [ok](#title) [ok](#second-code-heading) [ok](a.md#custom) [web](https://example.com/x)',
        '[gone](missing.md) [bad anchor](#nope) [out](../etc/passwd)',
        '`[not a link](missing-in-code.md)`', '```', '[in a fence](missing-in-fence.md)', '```',
        '![img](nothere.png)', '[ref]: alsomissing.md',
      ].join('\n'));
      const got = brokenLinks(['a.md'], { root }).map((b) => `${b.line} ${b.target} (${b.why})`);
      assert.deepEqual(got, [
        '5 missing.md (no such file)', '5 #nope (no heading or anchor #nope in a.md)', '5 ../etc/passwd (points outside the repository)',
        '10 nothere.png (no such file)', '11 alsomissing.md (no such file)',
      ]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
