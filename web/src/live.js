// The WebSocket /api/v1/live client: one socket for the whole app, opened after login with the
// session cookie (a same-origin WebSocket carries it, and the browser adds the Origin header
// that pulsed checks); no token ever goes into the URL, and the app keeps none in JS storage. Messages: hello, metrics (every second), event (changes made anywhere,
// including other devices), subscribed, pong, error. After a drop it reconnects with
// exponential backoff and jitter: attempt n waits a random time between half and all of
// min(0.5 s x 2^n, 30 s), so a restarted server is not hit by every client at once. Close
// code 4401 means the credential was revoked: the app goes back to the login page instead.
//
// Resume: every event carries `seq` (opaque, increasing per user). The client keeps the
// newest seq it has seen (or hello.last_seq of its first socket). After a reconnection the
// socket is opened with `?after=<newest seq seen>`, so that the server replays what was missed
// before any live frame (a `{"type":"resume"}` message would let live frames that arrive
// before it overtake the replay); without a cursor, the new hello's last_seq says whether
// anything was missed. Events are deduplicated by seq (anything not newer than the newest seen is dropped),
// so a replay that overlaps live frames never shows an event twice. When the server no longer
// has the history (`resync_required`), or the cursor cannot be named, listeners get `resync`
// and refetch what they show.

const MIN_DELAY_MS = 500;
const MAX_DELAY_MS = 30000;
const PING_EVERY_MS = 25000;

export class Live {
  constructor() {
    this.listeners = new Map();
    this.ws = null;
    this.attempt = 0;
    this.timer = null;
    this.pinger = null;
    this.running = false;
    this.status = 'idle';
    this.retryAt = 0;
    this.lastSeq = null; // newest seq seen (string), or the first hello's last_seq
    this.helloSeq = null; // last_seq of the current socket's hello
    this.hadHello = false; // a socket of this run has said hello (so lastSeq is meaningful)
    this.resumeAfter = null; // the cursor the current socket was opened with (?after=)
    this.onOnline = () => this.running && this.status !== 'open' && this.reconnectNow();
  }

  on(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(fn);
    return () => this.listeners.get(type).delete(fn);
  }

  emit(type, data) {
    for (const fn of this.listeners.get(type) || []) {
      try {
        fn(data);
      } catch (e) {
        // A listener's bug must not stop the feed; report it once, where it happened.
        setTimeout(() => {
          throw e;
        });
      }
    }
  }

  setStatus(status) {
    this.status = status;
    this.emit('status', { status, retryAt: this.retryAt, attempt: this.attempt });
  }

  start() {
    if (this.running) return;
    this.running = true;
    window.addEventListener('online', this.onOnline);
    this.connect();
  }

  stop() {
    this.running = false;
    this.lastSeq = null;
    this.hadHello = false;
    window.removeEventListener('online', this.onOnline);
    clearTimeout(this.timer);
    clearInterval(this.pinger);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onclose = ws.onmessage = ws.onerror = ws.onopen = null;
      if (ws.readyState <= WebSocket.OPEN) ws.close(1000);
    }
    this.setStatus('idle');
  }

  reconnectNow() {
    clearTimeout(this.timer);
    this.connect();
  }

  connect() {
    if (!this.running) return;
    this.resumeAfter = this.hadHello && this.lastSeq !== null ? this.lastSeq : null;
    const url = liveUrl(location, this.resumeAfter);
    this.setStatus('connecting');
    let ws;
    try {
      ws = new WebSocket(url);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      this.setStatus('open');
      clearInterval(this.pinger);
      this.pinger = setInterval(() => this.send({ type: 'ping' }), PING_EVERY_MS);
    };
    ws.onmessage = (ev) => {
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (msg && typeof msg.type === 'string') this.receive(msg);
    };
    ws.onerror = () => {}; // a close event always follows
    ws.onclose = (ev) => {
      clearInterval(this.pinger);
      if (this.ws !== ws) return;
      this.ws = null;
      if (ev.code === 4401) {
        this.running = false;
        this.setStatus('revoked');
        this.emit('revoked', ev);
        return;
      }
      this.scheduleReconnect();
    };
  }

  receive(msg) {
    if (msg.type === 'hello') {
      const last = typeof msg.last_seq === 'string' ? msg.last_seq : null;
      this.helloSeq = last;
      if (!this.hadHello) {
        this.hadHello = true;
        this.lastSeq = last;
      } else if (!('last_seq' in msg)) {
        this.resync(null); // a server without seq: what was missed cannot be replayed
      } else if (this.resumeAfter !== null) {
        // opened with ?after=: the replay (or resync_required) comes before any live frame
      } else if (last !== null && (this.lastSeq === null || seqAfter(last, this.lastSeq))) {
        // events were published while this client had no socket
        if (this.lastSeq === null) this.resync(last);
        else this.send({ type: 'resume', after: this.lastSeq });
      } else if (last === null && this.lastSeq !== null) {
        this.resync(null); // the stream expired: nothing to resume from
      }
    } else if (msg.type === 'event' && typeof msg.seq === 'string') {
      if (this.lastSeq !== null && !seqAfter(msg.seq, this.lastSeq)) return; // seen already
      this.lastSeq = msg.seq;
    } else if (msg.type === 'resync_required') {
      this.resync(this.helloSeq);
      return;
    }
    this.emit(msg.type, msg);
  }

  // The history is lost: start again from what the server says now.
  resync(seq) {
    if (seq !== null && (this.lastSeq === null || seqAfter(seq, this.lastSeq))) this.lastSeq = seq;
    this.emit('resync', { seq });
  }

  scheduleReconnect() {
    if (!this.running) return;
    const cap = Math.min(MAX_DELAY_MS, MIN_DELAY_MS * 2 ** this.attempt);
    const delay = Math.round(cap / 2 + Math.random() * (cap / 2));
    this.attempt++;
    this.retryAt = Date.now() + delay;
    this.setStatus('reconnecting');
    this.emit('retry', { attempt: this.attempt, delay });
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }
}

// The live socket's URL for the page's location, resuming after `after` when not null.
export function liveUrl(loc, after) {
  const base = `${loc.protocol === 'https:' ? 'wss' : 'ws'}://${loc.host}/api/v1/live`;
  return after === null ? base : `${base}?after=${encodeURIComponent(after)}`;
}

// a > b for two seqs: decimal strings of unsigned 64-bit integers (compared without BigInt
// precision loss: a longer string of digits is larger, else lexicographic).
export function seqAfter(a, b) {
  if (!/^[0-9]+$/.test(a) || !/^[0-9]+$/.test(b)) return a !== b;
  const x = a.replace(/^0+(?=.)/, '');
  const y = b.replace(/^0+(?=.)/, '');
  return x.length !== y.length ? x.length > y.length : x > y;
}

export const live = new Live();
