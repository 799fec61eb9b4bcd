// Type declarations for websocket-client.js (django-aws-api-gateway-websockets).

/** API Gateway's hard limit for one message (128 KB). */
export declare const MAX_MESSAGE_BYTES: number;

/** What `{% websocket_config %}` renders. */
export interface WebSocketConfig {
  /** `wss://` URL of the API's stage (or the local gateway's `ws://` URL). */
  url: string;
  /** Channel to join (`?channel=`). */
  channel?: string;
  /** API id the token is bound to. */
  apiId?: string;
  /** A view's `token_audience`, if it declares one. */
  audience?: string;
  /** The CSRF-protected token endpoint. */
  tokenUrl: string;
  /** Where to ask why a handshake was refused. */
  tokenStatusUrl?: string;
  /** HTTP header Django reads the CSRF token from (`settings.CSRF_HEADER_NAME`). */
  csrfHeaderName?: string;
  csrfToken?: string;
  /** Cookie to read the CSRF token from when `csrfToken` is empty. */
  csrfCookieName?: string;
  keepAliveSeconds?: number;
  maxConnectionSeconds?: number;
}

export interface WebSocketClientOptions {
  /** Send a ping after this many seconds without sending anything (default 300). */
  keepAliveSeconds?: number;
  /** Replace the connection after this many seconds (default 6900, below the 2-hour limit). */
  maxConnectionSeconds?: number;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  backoffFactor?: number;
  /** Fraction of each back-off delay that is random, 0..1 (default 0.5). */
  jitter?: number;
  requestTimeoutMs?: number;
  /** How long a replaced socket stays open after its successor opened (default 1000). */
  overlapMs?: number;
  /** How much longer frames the replaced socket delivered are not delivered again (5000). */
  dedupeMs?: number;
  /** Most messages kept while disconnected (default 1000). */
  maxQueue?: number;
  /** The keep-alive message (default `{action: "ping"}`). */
  pingMessage?: unknown;
  fetch?: typeof fetch;
  WebSocket?: typeof WebSocket;
}

export type ClientState = "idle" | "connecting" | "open" | "reconnecting" | "refused" | "closed";

export interface Refusal {
  status: number;
  reason: string;
}

export interface ClientEventMap {
  statechange: CustomEvent<{ state: ClientState; previous: ClientState }>;
  open: CustomEvent<{ rotation: boolean }>;
  close: CustomEvent<{ code: number; reason: string; wasClean: boolean }>;
  reconnecting: CustomEvent<{ attempt: number; delayMs: number }>;
  refused: CustomEvent<Refusal>;
  message: CustomEvent<{ message: unknown }>;
  error: CustomEvent<{ error: Error }>;
}

/** Read the JSON that `{% websocket_config %}` rendered. */
export declare function readConfig(elementId?: string, root?: Document): WebSocketConfig;

export declare class RefusedError extends Error {
  readonly status: number;
  readonly reason: string;
  constructor(status: number, reason: string);
}

export declare class RequestError extends Error {
  /** The server's status, or 0 for a timeout or a closed connection. */
  readonly status: number;
  readonly reason: string;
  constructor(status: number, reason: string);
}

export type Message = { action?: string; [key: string]: unknown };

export declare class WebSocketClient extends EventTarget {
  constructor(config: WebSocketConfig, options?: WebSocketClientOptions);
  readonly config: WebSocketConfig;
  readonly options: Required<Omit<WebSocketClientOptions, "fetch" | "WebSocket">>;
  /** The channel joined (or to be joined). */
  readonly channel: string;
  readonly state: ClientState;
  /** Set when the server refused for good (state "refused"). */
  readonly refusal: Refusal | null;
  /** Messages waiting for a connection. */
  readonly queued: number;
  connect(): this;
  close(): void;
  setChannel(channel: string): void;
  /** Subscribe to messages whose `type` is `type` ("*": all). Returns an unsubscribe function. */
  on<T = any>(type: string, handler: (message: T, client: WebSocketClient) => void): () => void;
  send(message: Message | string): void;
  request<T = unknown>(
    action: string,
    payload?: Record<string, unknown>,
    options?: { timeoutMs?: number },
  ): Promise<T>;
  addEventListener<K extends keyof ClientEventMap>(
    type: K,
    listener: (event: ClientEventMap[K]) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
}
