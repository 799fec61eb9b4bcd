/**
 * WebSocket client for django-aws-api-gateway-websockets: a plain ES module, no build step, no
 * dependencies.
 *
 * It does what every page talking to API Gateway needs and otherwise writes by hand:
 * - mints a fresh single-use token (CSRF-protected POST) before every connect and reconnect;
 * - connects with ?channel= and ?ws_token=; setChannel() reopens with a new token;
 * - reconnects with exponential back-off and full jitter, and stops on refusals that retrying
 *   cannot heal (401/403), with the server's reason (browsers cannot read a refused handshake's
 *   status, so it asks the token status endpoint);
 * - sends a keep-alive ping below API Gateway's 10-minute idle timeout, and replaces the
 *   connection before the 2-hour maximum (make before break: the new socket opens first);
 * - queues messages sent while not connected and flushes them in order;
 * - dispatches incoming messages by their `type`; request() correlates a two-way route's reply.
 *
 *   import { WebSocketClient, readConfig } from ".../websocket-client.js";
 *   const client = new WebSocketClient(readConfig());   // from {% websocket_config %}
 *   client.on("chat_message", (message) => render(message));
 *   client.connect();
 *   client.send({ action: "chat", text: "hello" });
 *   const answer = await client.request("whoami");
 */

/** API Gateway's hard limit for one message (128 KB). */
export const MAX_MESSAGE_BYTES = 128 * 1024;

/** Statuses from $connect or the token endpoint that retrying will not cure. */
const PERMANENT_STATUSES = new Set([400, 401, 403, 404]);

const DEFAULTS = {
  keepAliveSeconds: 300,
  maxConnectionSeconds: 7200 - 300,
  backoffInitialMs: 500,
  backoffMaxMs: 30000,
  backoffFactor: 2,
  /** Fraction of each back-off delay that is random (1 = "full jitter"). */
  jitter: 0.5,
  requestTimeoutMs: 15000,
  /** How long the replaced socket stays open after its successor opened. */
  overlapMs: 1000,
  /** How much longer a frame the replaced socket delivered is not delivered again. */
  dedupeMs: 5000,
  maxQueue: 1000,
  pingMessage: { action: "ping" },
};

/** Read the JSON that `{% websocket_config %}` rendered. */
export function readConfig(elementId = "websocket-config", root = globalThis.document) {
  const element = root && root.getElementById(elementId);
  if (!element) {
    throw new Error(`No element #${elementId}: render it with {% websocket_config %}.`);
  }
  return JSON.parse(element.textContent);
}

/** A refusal that will not heal: the client stopped. */
export class RefusedError extends Error {
  constructor(status, reason) {
    super(reason || `Refused (${status}).`);
    this.name = "RefusedError";
    this.status = status;
    this.reason = reason || "";
  }
}

/** A request() that failed: refused by the server (status > 0), timed out or cut off (0). */
export class RequestError extends Error {
  constructor(status, reason) {
    super(reason);
    this.name = "RequestError";
    this.status = status;
    this.reason = reason;
  }
}

/** A failure worth retrying (network error, 429, 5xx); `retryAfter` in seconds if the server said. */
class TransientError extends Error {
  constructor(message, retryAfter = 0) {
    super(message);
    this.retryAfter = retryAfter;
  }
}

function readCookie(name) {
  const doc = globalThis.document;
  if (!name || !doc || !doc.cookie) return "";
  for (const part of doc.cookie.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return decodeURIComponent(rest.join("="));
  }
  return "";
}

function report(error) {
  if (typeof globalThis.reportError === "function") globalThis.reportError(error);
  else setTimeout(() => { throw error; });
}

export class WebSocketClient extends EventTarget {
  /**
   * @param config what {% websocket_config %} renders (url, channel, tokenUrl, ...)
   * @param options overrides of the timing defaults, and `fetch`/`WebSocket` implementations
   */
  constructor(config, options = {}) {
    super();
    if (!config || !config.url) throw new Error("WebSocketClient needs config.url.");
    this.config = { ...config };
    this.options = { ...DEFAULTS, ...pick(config, ["keepAliveSeconds", "maxConnectionSeconds"]), ...options };
    this._fetch = this.options.fetch || globalThis.fetch.bind(globalThis);
    this._WebSocket = this.options.WebSocket || globalThis.WebSocket;
    this.channel = config.channel || "";
    this._state = "idle";
    this._everOpened = false;
    this._refusal = null;
    this._active = null; // the open socket's record
    this._epoch = 0; // bumped by close() and setChannel(): stale callbacks check it
    this._attempt = 0;
    this._queue = [];
    this._pending = new Map();
    this._subscribers = new Map();
    this._timers = { retry: 0, keepAlive: 0, rotation: 0 };
    this._overlap = null;
    this._requestCounter = 0;
    this._requestPrefix = Math.random().toString(36).slice(2, 8);
    this._onOnline = () => {
      if (this._state === "reconnecting" && this._timers.retry) {
        clearTimeout(this._timers.retry);
        this._timers.retry = 0;
        this._open(false);
      }
    };
  }

  /** "idle", "connecting", "open", "reconnecting", "refused" or "closed". */
  get state() {
    return this._state;
  }

  /** `{status, reason}` once the server refused for good, else null. */
  get refusal() {
    return this._refusal;
  }

  /** Messages waiting for a connection. */
  get queued() {
    return this._queue.length;
  }

  /** Open the connection (again, after close() or a refusal). */
  connect() {
    if (this._state === "connecting" || this._state === "open" || this._state === "reconnecting") {
      return this;
    }
    this._refusal = null;
    this._attempt = 0;
    if (typeof globalThis.addEventListener === "function") {
      globalThis.addEventListener("online", this._onOnline);
    }
    this._open(false);
    return this;
  }

  /** Close for good; queued messages are dropped and pending requests rejected. */
  close() {
    this._epoch += 1;
    this._teardown("closed by the page");
    this._queue = [];
    if (typeof globalThis.removeEventListener === "function") {
      globalThis.removeEventListener("online", this._onOnline);
    }
    this._setState("closed");
  }

  /** Join another channel: close this connection and open one with a new token. */
  setChannel(channel) {
    if (channel === this.channel && this._state !== "refused") return;
    this.channel = channel;
    if (this._state === "idle" || this._state === "closed") return;
    this._epoch += 1;
    this._teardown("channel changed");
    this._refusal = null;
    this._attempt = 0;
    this._open(false);
  }

  /**
   * Subscribe to incoming messages whose `type` is `type` ("*": every message).
   * @returns a function that unsubscribes
   */
  on(type, handler) {
    if (!this._subscribers.has(type)) this._subscribers.set(type, new Set());
    this._subscribers.get(type).add(handler);
    return () => this._subscribers.get(type)?.delete(handler);
  }

  /** Send `{action, ...}` (any JSON value); queued while not connected, sent in order. */
  send(message) {
    if (this._state === "closed" || this._state === "refused") {
      throw new Error(`Cannot send: the client is ${this._state}.`);
    }
    const text = typeof message === "string" ? message : JSON.stringify(message);
    if (new TextEncoder().encode(text).length > MAX_MESSAGE_BYTES) {
      throw new RangeError(`A message may not exceed ${MAX_MESSAGE_BYTES} bytes.`);
    }
    if (this._canSend() && this._queue.length === 0) {
      this._transmit(text);
      return;
    }
    if (this._queue.length >= this.options.maxQueue) {
      throw new Error(`Send queue is full (${this.options.maxQueue} messages).`);
    }
    this._queue.push(text);
    this._flush();
  }

  /**
   * Send `{action, ...payload, request_id}` and resolve with the handler's return value (the
   * route must be two-way; `$default` is). Rejects with RequestError on refusal or timeout.
   */
  request(action, payload = {}, { timeoutMs } = {}) {
    this._requestCounter += 1;
    const id = `${this._requestPrefix}-${this._requestCounter}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new RequestError(0, `No reply to ${action} within the timeout.`));
      }, timeoutMs ?? this.options.requestTimeoutMs);
      this._pending.set(id, { resolve, reject, timer });
      try {
        this.send({ ...payload, action, request_id: id });
      } catch (error) {
        clearTimeout(timer);
        this._pending.delete(id);
        reject(error);
      }
    });
  }

  // Connecting -----------------------------------------------------------------------------------

  async _open(rotation) {
    const epoch = this._epoch;
    if (!rotation) this._setState(this._everOpened ? "reconnecting" : "connecting");
    let token;
    try {
      token = await this._mintToken();
    } catch (error) {
      if (epoch === this._epoch) this._failed(error, rotation);
      return;
    }
    if (epoch !== this._epoch) return;
    let ws;
    try {
      ws = new this._WebSocket(this._socketUrl(token));
    } catch (error) {
      this._refuse(0, `Invalid WebSocket URL: ${error.message}`);
      return;
    }
    const record = { ws, token, opened: false, retired: false };
    ws.onopen = () => {
      if (epoch !== this._epoch) {
        record.retired = true;
        ws.close(1000, "superseded");
        return;
      }
      record.opened = true;
      const previous = this._active;
      this._active = record;
      this._attempt = 0;
      this._everOpened = true;
      clearTimeout(this._timers.retry);
      this._timers.retry = 0;
      if (previous && previous !== record) this._retire(previous);
      this._setState("open");
      this._emit("open", { rotation: Boolean(previous) });
      this._flush();
      this._armKeepAlive();
      this._armRotation(this.options.maxConnectionSeconds * 1000);
    };
    ws.onmessage = (event) => this._receive(event.data, record);
    ws.onclose = (event) => {
      if (record.retired) return;
      if (!record.opened) {
        if (epoch === this._epoch) this._handshakeFailed(record, rotation);
        return;
      }
      if (this._active !== record) return;
      this._active = null;
      this._clearTimers();
      this._emit("close", { code: event.code, reason: event.reason, wasClean: event.wasClean });
      if (epoch !== this._epoch || this._state !== "open") return;
      this._scheduleRetry(0);
    };
  }

  _socketUrl(token) {
    const url = new URL(this.config.url);
    if (this.channel) url.searchParams.set("channel", this.channel);
    url.searchParams.set("ws_token", token);
    return url.toString();
  }

  async _mintToken() {
    const fields = { channel: this.channel, api_id: this.config.apiId, audience: this.config.audience };
    const body = await this._post(this.config.tokenUrl, fields);
    if (!body || typeof body.token !== "string") throw new TransientError("No token in the answer.");
    return body.token;
  }

  /** POST form fields with the CSRF header; JSON answer, or a typed error. */
  async _post(url, fields) {
    const form = new URLSearchParams();
    for (const [key, value] of Object.entries(fields)) if (value) form.set(key, value);
    const headers = { "X-Requested-With": "XMLHttpRequest" };
    const csrf = this.config.csrfToken || readCookie(this.config.csrfCookieName || "csrftoken");
    if (this.config.csrfHeaderName && csrf) headers[this.config.csrfHeaderName] = csrf;
    let response;
    try {
      response = await this._fetch(url, { method: "POST", body: form, headers, credentials: "same-origin" });
    } catch (error) {
      throw new TransientError(`Network error: ${error.message}`);
    }
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    // The token status endpoint answers 404 {"state": "unknown"}: an answer, not a failure.
    if (response.ok || (response.status === 404 && body && body.state)) {
      return { status: response.status, ...body };
    }
    const reason = (body && (body.error || body.detail)) || response.statusText || "";
    if (PERMANENT_STATUSES.has(response.status)) throw new RefusedError(response.status, reason);
    const retryAfter = Number(response.headers.get("Retry-After")) || 0;
    throw new TransientError(`${response.status} ${reason}`, retryAfter);
  }

  /** The handshake failed: ask the server why, then stop or retry. */
  async _handshakeFailed(record, rotation) {
    const epoch = this._epoch;
    let answer = null;
    if (this.config.tokenStatusUrl) {
      try {
        answer = await this._post(this.config.tokenStatusUrl, { token: record.token });
      } catch (error) {
        answer = null;
      }
    }
    if (epoch !== this._epoch) return;
    if (answer && answer.state === "refused") {
      if (PERMANENT_STATUSES.has(answer.status)) {
        this._refuse(answer.status, answer.reason);
        return;
      }
      this._failed(new TransientError(answer.reason), rotation);
      return;
    }
    this._failed(new TransientError("The connection could not be opened."), rotation);
  }

  _failed(error, rotation) {
    if (error instanceof RefusedError) {
      this._refuse(error.status, error.reason);
      return;
    }
    this._emit("error", { error });
    if (rotation && this._active) {
      // The current socket still works: try the replacement again a little later.
      this._armRotation(this._backoffDelay(error.retryAfter));
      return;
    }
    this._scheduleRetry(error.retryAfter || 0);
  }

  _backoffDelay(retryAfterSeconds = 0) {
    const { backoffInitialMs, backoffMaxMs, backoffFactor, jitter } = this.options;
    const exponential = Math.min(backoffMaxMs, backoffInitialMs * backoffFactor ** this._attempt);
    const delay = exponential * (1 - jitter) + Math.random() * exponential * jitter;
    this._attempt += 1;
    return Math.max(delay, retryAfterSeconds * 1000);
  }

  _scheduleRetry(retryAfterSeconds) {
    const delayMs = this._backoffDelay(retryAfterSeconds);
    this._setState("reconnecting");
    this._emit("reconnecting", { attempt: this._attempt, delayMs });
    clearTimeout(this._timers.retry);
    this._timers.retry = setTimeout(() => {
      this._timers.retry = 0;
      this._open(false);
    }, delayMs);
  }

  _refuse(status, reason) {
    this._epoch += 1;
    this._refusal = { status, reason: reason || "" };
    this._teardown(reason || "refused");
    this._queue = [];
    this._setState("refused");
    this._emit("refused", { ...this._refusal });
  }

  /** Close the active socket (its close is expected) and forget timers and requests. */
  _teardown(why) {
    this._clearTimers();
    clearTimeout(this._timers.retry);
    this._timers.retry = 0;
    if (this._active) {
      this._active.retired = true;
      this._active.ws.close(1000);
      this._active = null;
    }
    if (this._overlap) {
      this._overlap.old.ws.close(1000);
      this._overlap = null; // a new channel or a stop: nothing to deduplicate against
    }
    for (const [id, pending] of this._pending) {
      clearTimeout(pending.timer);
      pending.reject(new RequestError(0, `Connection closed (${why}).`));
      this._pending.delete(id);
    }
  }

  // Staying connected ----------------------------------------------------------------------------

  _armKeepAlive() {
    clearTimeout(this._timers.keepAlive);
    const ms = this.options.keepAliveSeconds * 1000;
    if (!(ms > 0)) return;
    this._timers.keepAlive = setTimeout(() => {
      if (this._canSend()) this._transmit(JSON.stringify(this.options.pingMessage));
    }, ms);
  }

  _armRotation(ms) {
    clearTimeout(this._timers.rotation);
    if (!(ms > 0)) return;
    this._timers.rotation = setTimeout(() => {
      this._timers.rotation = 0;
      if (this._active) this._open(true);
    }, ms);
  }

  /**
   * The replaced socket stays open for overlapMs, so nothing sent to it in flight is lost.
   * Frames it delivered are remembered for dedupeMs more: the server may still be delivering
   * the same broadcast to the new connection (it retries sends to a connection that is opening).
   */
  _retire(record) {
    record.retired = true;
    if (this._overlap) this._overlap.old.ws.close(1000);
    const overlap = { old: record, oldSeen: new Map(), freshSeen: new Map() };
    this._overlap = overlap;
    setTimeout(() => record.ws.close(1000, "replaced"), this.options.overlapMs);
    setTimeout(() => {
      if (this._overlap === overlap) this._overlap = null;
    }, this.options.overlapMs + this.options.dedupeMs);
  }

  _clearTimers() {
    clearTimeout(this._timers.keepAlive);
    clearTimeout(this._timers.rotation);
    this._timers.keepAlive = 0;
    this._timers.rotation = 0;
  }

  // Sending and receiving ------------------------------------------------------------------------

  _canSend() {
    return Boolean(this._active && this._active.ws.readyState === 1);
  }

  _transmit(text) {
    this._active.ws.send(text);
    this._armKeepAlive();
  }

  _flush() {
    while (this._queue.length && this._canSend()) this._transmit(this._queue.shift());
  }

  _receive(data, record) {
    if (typeof data !== "string" || data === "") return; // API Gateway sends text frames only
    const overlap = this._overlap;
    if (overlap) {
      // While two sockets are open a broadcast reaches both: deliver it once.
      const fromOld = record === overlap.old;
      const other = fromOld ? overlap.freshSeen : overlap.oldSeen;
      const mine = fromOld ? overlap.oldSeen : overlap.freshSeen;
      const seen = other.get(data) || 0;
      if (seen > 0) {
        other.set(data, seen - 1);
        return;
      }
      mine.set(data, (mine.get(data) || 0) + 1);
    }
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      message = data;
    }
    if (message && typeof message === "object" && message.type === "reply" && this._pending.has(message.request_id)) {
      const pending = this._pending.get(message.request_id);
      this._pending.delete(message.request_id);
      clearTimeout(pending.timer);
      if (message.ok) pending.resolve(message.data);
      else pending.reject(new RequestError(message.status || 0, message.error || "Refused."));
      return;
    }
    this._emit("message", { message });
    const type = message && typeof message === "object" ? message.type : undefined;
    for (const key of type === undefined ? ["*"] : [type, "*"]) {
      for (const handler of this._subscribers.get(key) || []) {
        try {
          handler(message, this);
        } catch (error) {
          report(error);
        }
      }
    }
  }

  _setState(state) {
    if (state === this._state) return;
    const previous = this._state;
    this._state = state;
    this._emit("statechange", { state, previous });
  }

  _emit(name, detail) {
    this.dispatchEvent(new CustomEvent(name, { detail }));
  }
}

function pick(source, keys) {
  const out = {};
  for (const key of keys) if (source[key] !== undefined && source[key] !== null) out[key] = source[key];
  return out;
}
