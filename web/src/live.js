// The WebSocket /api/v1/live client: one socket for the whole app, opened after login with the
// session cookie (a same-origin WebSocket carries it, and the browser adds the Origin header
// that pulsed checks); no token ever goes into the URL, and the app keeps none in JS storage. Messages: hello, metrics (every second), event (changes made anywhere,
// including other devices), subscribed, pong, error. After a drop it reconnects with
// exponential backoff and jitter: attempt n waits a random time between half and all of
// min(0.5 s x 2^n, 30 s), so a restarted server is not hit by every client at once. Close
// code 4401 means the credential was revoked: the app goes back to the login page instead.

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
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/v1/live`;
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
      if (msg && typeof msg.type === 'string') this.emit(msg.type, msg);
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

export const live = new Live();
