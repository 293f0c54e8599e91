// The live client's resume logic (web/src/live.js, as the UI imports it), fed the frames a
// server sends, without a socket: seq comparison as unsigned 64-bit decimals; the first
// hello's last_seq as the floor; after a reconnection a `resume` from the newest seq seen
// when the new hello's last_seq is newer, none when it is the same; events deduplicated by
// seq (a replay overlapping live frames shows nothing twice); `resync` (refetch) on
// resync_required, on a stream gone (last_seq null), on no cursor, and on a server without seq.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Live, liveUrl, seqAfter } from '../src/live.js';

function client() {
  const live = new Live();
  const sent = [];
  const events = [];
  let resyncs = 0;
  live.send = (m) => sent.push(m);
  live.on('event', (m) => events.push(m.seq));
  live.on('resync', () => resyncs++);
  const ev = (seq) => live.receive({ type: 'event', event: 'feeding.created', seq, data: {} });
  return { live, sent, events, ev, resyncs: () => resyncs };
}

it('compares seqs as unsigned 64-bit integers', () => {
  assert.equal(seqAfter('10', '9'), true);
  assert.equal(seqAfter('9', '10'), false);
  assert.equal(seqAfter('7', '7'), false);
  assert.equal(seqAfter('18446744073709551615', '18446744073709551614'), true);
  assert.equal(seqAfter('18446744073709551614', '18446744073709551615'), false);
  assert.equal(seqAfter('0010', '9'), true);
});

describe('resume', () => {
  it('takes the first hello as the floor and drops what is not newer', () => {
    const c = client();
    c.live.receive({ type: 'hello', last_seq: '5' });
    for (const s of ['4', '5', '6', '7', '7', '6']) c.ev(s);
    assert.deepEqual(c.events, ['6', '7']);
    assert.deepEqual(c.sent, []);
  });

  it('resumes after a reconnection from the newest seq seen, and shows a replay overlapping live frames once', () => {
    const c = client();
    c.live.receive({ type: 'hello', last_seq: null });
    c.ev('3');
    c.ev('7');
    c.live.receive({ type: 'hello', last_seq: '12' });
    assert.deepEqual(c.sent, [{ type: 'resume', after: '7' }]);
    for (const s of ['9', '12', '13', '12', '13', '14']) c.ev(s);
    c.live.receive({ type: 'resumed', count: 2 });
    assert.deepEqual(c.events, ['3', '7', '9', '12', '13', '14']);
    assert.equal(c.resyncs(), 0);
    // nothing missed the next time: no resume
    c.live.receive({ type: 'hello', last_seq: '14' });
    assert.equal(c.sent.length, 1);
  });

  it('reopens with ?after= the newest seq seen, and then sends no resume message', () => {
    const c = client();
    const loc = { protocol: 'http:', host: '127.0.0.1:8080' };
    c.live.receive({ type: 'hello', last_seq: '2' });
    c.ev('3');
    c.ev('7');
    // what connect() does before opening the next socket
    c.live.resumeAfter = c.live.hadHello && c.live.lastSeq !== null ? c.live.lastSeq : null;
    assert.equal(liveUrl(loc, c.live.resumeAfter), 'ws://127.0.0.1:8080/api/v1/live?after=7');
    assert.equal(liveUrl({ protocol: 'https:', host: 'x' }, null), 'wss://x/api/v1/live');
    c.live.receive({ type: 'hello', last_seq: '12' });
    assert.deepEqual(c.sent, [], 'the URL asked for the replay');
    for (const s of ['9', '12']) c.ev(s);
    c.live.receive({ type: 'resumed', count: 2 });
    c.ev('13');
    assert.deepEqual(c.events, ['3', '7', '9', '12', '13']);
    assert.equal(c.resyncs(), 0);
  });

  it('refetches on resync_required and goes on from the new hello', () => {
    const c = client();
    c.live.receive({ type: 'hello', last_seq: '2' });
    c.ev('3');
    c.live.receive({ type: 'hello', last_seq: '5000' });
    assert.deepEqual(c.sent, [{ type: 'resume', after: '3' }]);
    c.live.receive({ type: 'resync_required' });
    assert.equal(c.resyncs(), 1);
    c.ev('4999');
    c.ev('5001');
    assert.deepEqual(c.events, ['3', '5001'], 'history up to the hello comes from the refetch');
  });

  it('refetches when the stream is gone, when there is no cursor, and with a server without seq', () => {
    const gone = client();
    gone.live.receive({ type: 'hello', last_seq: '2' });
    gone.ev('3');
    gone.live.receive({ type: 'hello', last_seq: null });
    assert.equal(gone.resyncs(), 1);
    assert.deepEqual(gone.sent, []);

    const none = client();
    none.live.receive({ type: 'hello', last_seq: null });
    none.live.receive({ type: 'hello', last_seq: '8' });
    assert.equal(none.resyncs(), 1);
    none.ev('8');
    none.ev('9');
    assert.deepEqual(none.events, ['9']);

    const old = client();
    old.live.receive({ type: 'hello' });
    old.live.receive({ type: 'event', event: 'note.created', data: {} });
    old.live.receive({ type: 'hello' });
    assert.equal(old.resyncs(), 1);
    assert.equal(old.events.length, 1);
  });

  it('forgets the cursor when stopped (another user may sign in)', () => {
    const c = client();
    globalThis.window = { removeEventListener() {} };
    c.live.receive({ type: 'hello', last_seq: '4' });
    c.ev('5');
    c.live.stop();
    delete globalThis.window;
    c.live.receive({ type: 'hello', last_seq: '9' });
    assert.deepEqual(c.sent, []);
    assert.equal(c.resyncs(), 0);
  });
});
