// The UI's volume conversions (web/src/units.js, imported as the UI uses it): every value from
// 0.1 to 67.6 oz in steps of 0.1 survives entry → ml → display; 67.7 oz (over 2000 ml) and
// malformed entries are refused; ml entry is whole 1..2000.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { MAX_ML, ML_PER_OZ, clock, fmtDuration, fmtVolume, parseVolume, toInput } from '../src/units.js';

it('every 0.1..67.6 oz survives entry → ml → display', () => {
  let n = 0;
  for (let t = 1; t <= 676; t++) {
    const typed = `${Math.floor(t / 10)}.${t % 10}`;
    const { ml, error } = parseVolume(typed, 'oz');
    assert.equal(error, undefined, typed);
    assert.ok(Number.isInteger(ml) && ml >= 1 && ml <= MAX_ML, `${typed} → ${ml}`);
    assert.equal(ml, Math.round(t * 0.1 * ML_PER_OZ), `${typed} is stored as round(oz × 29.5735)`);
    assert.equal(toInput(ml, 'oz'), typed, `${typed} → ${ml} ml → ${toInput(ml, 'oz')}`);
    assert.equal(fmtVolume(ml, 'oz'), `${typed} oz`);
    // also as typed without the trailing .0 or with a comma
    if (t % 10 === 0) assert.equal(parseVolume(String(t / 10), 'oz').ml, ml);
    assert.equal(parseVolume(typed.replace('.', ','), 'oz').ml, ml);
    n++;
  }
  assert.equal(n, 676);
});

it('refuses 67.7 oz and what is not a tenth of an ounce', () => {
  for (const bad of ['67.7', '68', '0', '0.0', '0.04', '4.55', '-1', '', 'abc', '1e2', '4.']) {
    const r = parseVolume(bad, 'oz');
    assert.equal(r.ml, undefined, `${bad} refused`);
    assert.match(r.error, /oz|ounces/);
  }
  assert.equal(parseVolume('67.6', 'oz').ml, 1999);
  assert.equal(parseVolume('.5', 'oz').ml, 15);
});

it('ml entry: whole numbers 1..2000, shown as typed', () => {
  for (const ml of [1, 60, 120, 1999, 2000]) {
    assert.deepEqual(parseVolume(String(ml), 'ml'), { ml });
    assert.equal(fmtVolume(ml, 'ml'), `${ml} ml`);
  }
  for (const bad of ['0', '2001', '1.5', '', 'x', '-3']) assert.ok(parseVolume(bad, 'ml').error, bad);
  assert.equal(fmtVolume(null, 'oz'), '');
});

it('durations and timer clocks', () => {
  assert.equal(fmtDuration(0), '0 s');
  assert.equal(fmtDuration(754), '12 min 34 s');
  assert.equal(fmtDuration(3720), '1 h 2 min');
  assert.equal(fmtDuration(754, { seconds: false }), '12 min');
  assert.equal(fmtDuration(null), '–');
  assert.equal(clock(754), '12:34');
  assert.equal(clock(3754), '1:02:34');
});
