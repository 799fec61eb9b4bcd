// Unit tests of websocket-client.js on Node's test runner, with a scripted WebSocket and fetch.
// Timing-dependent behaviour (back-off, keep-alive, replacement) runs on mocked timers.
// Run by tests/test_client_js.py: node --test tests/js/client.test.mjs
import { afterEach, mock, test } from "node:test";
import assert from "node:assert/strict";

import {
  WebSocketClient,
  RefusedError,
  RequestError,
  MAX_MESSAGE_BYTES,
} from "../../django_aws_api_gateway_websockets/static/django_aws_api_gateway_websockets/websocket-client.js";

const CONFIG = {
  url: "ws://gateway.test/abc123/demo",
  channel: "lobby",
  apiId: "abc123",
  tokenUrl: "/websockets/token/",
  tokenStatusUrl: "/websockets/token/status/",
  csrfHeaderName: "X-CSRFTOKEN",
  csrfToken: "csrf-1",
  keepAliveSeconds: 300,
  maxConnectionSeconds: 6900,
};

/** A scripted server: what the token endpoints answer and whether sockets open. */
function harness({ handshake = () => "open", statusFor = () => ({ state: "unused" }), mint } = {}) {
  const sockets = [];
  const posts = [];
  let minted = 0;

  class FakeSocket {
    constructor(url) {
      this.url = new URL(url);
      this.sent = [];
      this.readyState = 0;
      this.closedWith = null;
      sockets.push(this);
      queueMicrotask(() => {
        const outcome = handshake(this, sockets.length);
        if (outcome === "open") this.open();
        else if (outcome === "fail") this.serverClose(1006);
      });
    }
    open() {
      this.readyState = 1;
      this.onopen?.();
    }
    send(text) {
      if (this.readyState !== 1) throw new Error("not open");
      this.sent.push(JSON.parse(text));
    }
    close(code = 1000) {
      if (this.readyState === 3) return;
      this.readyState = 3;
      this.closedWith = code;
      queueMicrotask(() => this.onclose?.({ code, reason: "", wasClean: true }));
    }
    serverClose(code = 1001) {
      this.readyState = 3;
      this.onclose?.({ code, reason: "", wasClean: false });
    }
    deliver(message) {
      this.onmessage?.({ data: typeof message === "string" ? message : JSON.stringify(message) });
    }
    get token() {
      return this.url.searchParams.get("ws_token");
    }
  }

  async function fetch(url, init) {
    const fields = Object.fromEntries(new URLSearchParams(init.body));
    posts.push({ url, fields, headers: init.headers });
    let status = 200;
    let body;
    if (url === CONFIG.tokenUrl) {
      const answer = mint?.(posts.length);
      if (answer) ({ status, body } = answer);
      else body = { token: `t${++minted}`, expires_in: 60 };
    } else {
      body = statusFor(fields.token);
      status = body.state === "unknown" ? 404 : 200;
    }
    return {
      ok: status >= 200 && status < 300,
      status,
      statusText: "",
      headers: new Headers(body?.retryAfter ? { "Retry-After": String(body.retryAfter) } : {}),
      json: async () => body,
    };
  }

  return { sockets, posts, FakeSocket, fetch };
}

const settle = async (rounds = 10) => {
  for (let i = 0; i < rounds; i += 1) await new Promise((resolve) => setImmediate(resolve));
};

const clients = [];

function client(h, options = {}) {
  const made = new WebSocketClient(CONFIG, { fetch: h.fetch, WebSocket: h.FakeSocket, ...options });
  clients.push(made);
  return made;
}

// Leave no timer running (keep-alive, replacement, retries), so the process can exit.
afterEach(() => {
  while (clients.length) clients.pop().close();
});

test("mints a token with the CSRF header and connects with channel and token", async () => {
  const h = harness();
  const c = client(h).connect();
  await settle();
  assert.equal(c.state, "open");
  assert.equal(h.posts[0].url, "/websockets/token/");
  assert.equal(h.posts[0].headers["X-CSRFTOKEN"], "csrf-1");
  assert.deepEqual(h.posts[0].fields, { channel: "lobby", api_id: "abc123" });
  assert.equal(h.sockets[0].url.searchParams.get("channel"), "lobby");
  assert.equal(h.sockets[0].token, "t1");
});

test("queues while connecting and flushes in order", async () => {
  const h = harness();
  const c = client(h);
  c.send({ action: "chat", text: "1" });
  c.connect();
  c.send({ action: "chat", text: "2" });
  assert.equal(c.queued, 2);
  await settle();
  c.send({ action: "chat", text: "3" });
  assert.deepEqual(h.sockets[0].sent.map((m) => m.text), ["1", "2", "3"]);
  assert.equal(c.queued, 0);
});

test("reconnects with a new token after the server closes, and keeps sends queued meanwhile", async () => {
  mock.timers.enable({ apis: ["setTimeout"] });
  try {
    const h = harness();
    const c = client(h, { jitter: 0 }).connect();
    await settle();
    h.sockets[0].serverClose(1001);
    assert.equal(c.state, "reconnecting");
    c.send({ action: "chat", text: "while down" });
    mock.timers.tick(500);
    await settle();
    assert.equal(c.state, "open");
    assert.equal(h.sockets.length, 2);
    assert.notEqual(h.sockets[1].token, h.sockets[0].token);
    assert.deepEqual(h.sockets[1].sent, [{ action: "chat", text: "while down" }]);
  } finally {
    mock.timers.reset();
  }
});

test("backs off exponentially, capped, while the handshake keeps failing", async () => {
  mock.timers.enable({ apis: ["setTimeout"] });
  try {
    const h = harness({ handshake: () => "fail" });
    const c = client(h, { jitter: 0, backoffMaxMs: 4000 });
    const delays = [];
    c.addEventListener("reconnecting", (event) => delays.push(event.detail.delayMs));
    c.connect();
    for (let i = 0; i < 5; i += 1) {
      await settle();
      mock.timers.tick(delays.at(-1) ?? 0);
    }
    await settle();
    assert.deepEqual(delays.slice(0, 5), [500, 1000, 2000, 4000, 4000]);
    // Each attempt asked why, with the token it had used.
    const asked = h.posts.filter((p) => p.url === CONFIG.tokenStatusUrl).map((p) => p.fields.token);
    assert.deepEqual(asked.slice(0, 3), ["t1", "t2", "t3"]);
  } finally {
    mock.timers.reset();
  }
});

test("jitter keeps delays within [delay * (1 - jitter), delay]", async () => {
  const h = harness();
  const c = client(h, { jitter: 0.5 });
  for (let i = 0; i < 50; i += 1) {
    c._attempt = 3;
    const delay = c._backoffDelay();
    assert.ok(delay >= 2000 && delay <= 4000, String(delay));
  }
});

test("stops on a 403 refusal and exposes the server's reason", async () => {
  const h = harness({
    handshake: () => "fail",
    statusFor: () => ({ state: "refused", status: 403, reason: "You may not join this channel." }),
  });
  const c = client(h);
  const refused = [];
  c.addEventListener("refused", (event) => refused.push(event.detail));
  c.connect();
  await settle(20);
  assert.equal(c.state, "refused");
  assert.deepEqual(c.refusal, { status: 403, reason: "You may not join this channel." });
  assert.deepEqual(refused, [{ status: 403, reason: "You may not join this channel." }]);
  assert.equal(h.sockets.length, 1);
  assert.throws(() => c.send({ action: "chat" }), /refused/);
});

test("retries a 429 refusal instead of stopping", async () => {
  const h = harness({
    handshake: () => "fail",
    statusFor: () => ({ state: "refused", status: 429, reason: "Too many requests." }),
  });
  const c = client(h).connect();
  await settle(20);
  assert.equal(c.state, "reconnecting");
  c.close();
});

test("a 401 from the token endpoint stops the client", async () => {
  const h = harness({ mint: () => ({ status: 401, body: { error: "Sign in to open a WebSocket connection." } }) });
  const c = client(h).connect();
  await settle();
  assert.equal(c.state, "refused");
  assert.equal(c.refusal.reason, "Sign in to open a WebSocket connection.");
  assert.equal(h.sockets.length, 0);
});

test("setChannel reopens with a new token bound to the new channel, and leaves refused", async () => {
  let refuse = true;
  const h = harness({
    handshake: () => (refuse ? "fail" : "open"),
    statusFor: () => ({ state: "refused", status: 403, reason: "no" }),
  });
  const c = client(h).connect();
  await settle(20);
  assert.equal(c.state, "refused");
  refuse = false;
  c.setChannel("random");
  await settle();
  assert.equal(c.state, "open");
  const last = h.sockets.at(-1);
  assert.equal(last.url.searchParams.get("channel"), "random");
  assert.equal(h.posts.filter((p) => p.url === CONFIG.tokenUrl).at(-1).fields.channel, "random");
  c.setChannel("lobby");
  await settle();
  assert.equal(last.closedWith, 1000);
  assert.equal(h.sockets.at(-1).url.searchParams.get("channel"), "lobby");
});

test("dispatches by type, and to '*'", async () => {
  const h = harness();
  const c = client(h).connect();
  await settle();
  const chat = [];
  const all = [];
  const off = c.on("chat_message", (m) => chat.push(m.text));
  c.on("*", (m) => all.push(m));
  c.on("chat_message", () => {
    throw new Error("a broken subscriber does not stop the others");
  });
  const errors = [];
  const reportError = globalThis.reportError;
  globalThis.reportError = (error) => errors.push(error);
  try {
    h.sockets[0].deliver({ type: "chat_message", text: "hi" });
    h.sockets[0].deliver({ type: "presence", users: [] });
    h.sockets[0].deliver("plain text");
    h.sockets[0].deliver("");
    off();
    h.sockets[0].deliver({ type: "chat_message", text: "after unsubscribe" });
  } finally {
    globalThis.reportError = reportError;
  }
  assert.deepEqual(chat, ["hi"]);
  assert.equal(all.length, 4);
  assert.equal(all[2], "plain text");
  assert.equal(errors.length, 2);
});

test("request() resolves with the handler's return value by request id, and rejects refusals", async () => {
  const h = harness();
  const c = client(h).connect();
  await settle();
  const first = c.request("history", { limit: 2 });
  const second = c.request("whoami");
  const [a, b] = h.sockets[0].sent;
  assert.equal(a.action, "history");
  assert.equal(a.limit, 2);
  assert.notEqual(a.request_id, b.request_id);
  // Answers arrive out of order.
  h.sockets[0].deliver({ type: "reply", request_id: b.request_id, ok: true, data: "alice" });
  h.sockets[0].deliver({ type: "reply", request_id: a.request_id, ok: true, data: [1, 2] });
  assert.deepEqual(await first, [1, 2]);
  assert.equal(await second, "alice");

  const refused = c.request("secret");
  const { request_id } = h.sockets[0].sent.at(-1);
  h.sockets[0].deliver({ type: "reply", request_id, ok: false, status: 403, error: "Forbidden." });
  await assert.rejects(refused, (error) => error instanceof RequestError && error.status === 403);
});

test("request() times out", async () => {
  mock.timers.enable({ apis: ["setTimeout"] });
  try {
    const h = harness();
    const c = client(h).connect();
    await settle();
    const pending = c.request("history", {}, { timeoutMs: 1000 });
    mock.timers.tick(1000);
    await assert.rejects(pending, (error) => error instanceof RequestError && error.status === 0);
  } finally {
    mock.timers.reset();
  }
});

test("sends a ping after keepAliveSeconds without sending", async () => {
  mock.timers.enable({ apis: ["setTimeout"] });
  try {
    const h = harness();
    const c = client(h, { keepAliveSeconds: 10 }).connect();
    await settle();
    mock.timers.tick(9000);
    c.send({ action: "chat", text: "resets the timer" });
    mock.timers.tick(9000);
    assert.equal(h.sockets[0].sent.length, 1);
    mock.timers.tick(1000);
    assert.deepEqual(h.sockets[0].sent.at(-1), { action: "ping" });
  } finally {
    mock.timers.reset();
  }
});

test("replaces the connection before the maximum: make before break, no loss, no duplicates", async () => {
  mock.timers.enable({ apis: ["setTimeout"] });
  try {
    const h = harness();
    const c = client(h, { maxConnectionSeconds: 60, keepAliveSeconds: 0 }).connect();
    await settle();
    const received = [];
    c.on("chat_message", (m) => received.push(m.text));
    const states = [];
    c.addEventListener("statechange", (event) => states.push(event.detail.state));
    mock.timers.tick(60_000);
    await settle();
    assert.equal(h.sockets.length, 2);
    const [old, fresh] = h.sockets;
    assert.notEqual(fresh.token, old.token);
    assert.equal(old.readyState, 1, "the old socket stays open during the overlap");
    c.send({ action: "chat", text: "goes to the new socket" });
    assert.equal(fresh.sent.length, 1);
    // A broadcast reaches both sockets during the overlap: delivered once.
    old.deliver({ type: "chat_message", text: "broadcast" });
    fresh.deliver({ type: "chat_message", text: "broadcast" });
    old.deliver({ type: "chat_message", text: "only on the old one" });
    mock.timers.tick(1000);
    await settle();
    assert.equal(old.closedWith, 1000);
    // The server may deliver to the new connection late (it retries while it opens).
    fresh.deliver({ type: "chat_message", text: "only on the old one" });
    mock.timers.tick(5000);
    fresh.deliver({ type: "chat_message", text: "broadcast" }); // after the window: a new line
    assert.deepEqual(received, ["broadcast", "only on the old one", "broadcast"]);
    assert.deepEqual(states, [], "the page never saw a disconnection");
  } finally {
    mock.timers.reset();
  }
});

test("refuses messages over API Gateway's 128 KB", async () => {
  const h = harness();
  const c = client(h).connect();
  await settle();
  assert.throws(() => c.send({ action: "chat", text: "x".repeat(MAX_MESSAGE_BYTES) }), RangeError);
});

test("close() stops everything and rejects pending requests", async () => {
  const h = harness();
  const c = client(h).connect();
  await settle();
  const pending = c.request("history");
  c.close();
  assert.equal(c.state, "closed");
  await assert.rejects(pending, RequestError);
  await settle();
  assert.equal(h.sockets.length, 1);
  assert.ok(new RefusedError(401, "x") instanceof Error);
});
