import type { ServerMessage } from "@parley/protocol";
import { PROTOCOL_VERSION } from "@parley/protocol";
import WebSocket from "ws";

export interface Closed {
  code: number;
  reason: string;
}

/** How a test client connects: the Origin, the local (loopback) address to connect from, extra headers (e.g. X-Forwarded-For). */
export interface ConnectOptions {
  origin?: string;
  localAddress?: string;
  headers?: Record<string, string>;
  /** Certificates trusted for a wss:// URL (instead of the system's), e.g. a server's self-signed one. */
  ca?: string | Buffer;
}

let nextRequest = 1;

/** Requests whose answer may wait for a password hash. */
const HASHING_REQUESTS = new Set([
  "auth.register",
  "auth.login",
  "account.changePassword",
  "account.delete",
  "operator.resetPassword",
]);
const HASHING_TIMEOUT_MS = 60_000;

/**
 * A protocol-level test client over a real WebSocket: sends anything (including garbage),
 * keeps every message and every raw frame it received, waits for replies and events.
 */
export class RawClient {
  readonly received: ServerMessage[] = [];
  /** Every frame exactly as received, for privacy checks. */
  readonly frames: string[] = [];
  readonly closed: Promise<Closed>;
  readonly ws: WebSocket;
  #waiters: (() => void)[] = [];

  private constructor(ws: WebSocket) {
    this.ws = ws;
    this.closed = new Promise((resolve) => {
      ws.on("close", (code, reason) => {
        resolve({ code, reason: reason.toString() });
        this.#notify();
      });
    });
    ws.on("message", (data) => {
      const text = data.toString();
      this.frames.push(text);
      this.received.push(JSON.parse(text) as ServerMessage);
      this.#notify();
    });
  }

  static connect(url: string, options: ConnectOptions = {}): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, {
        ...(options.origin ? { origin: options.origin } : {}),
        ...(options.headers ? { headers: options.headers } : {}),
        ...(options.localAddress ? { localAddress: options.localAddress } : {}),
        ...(options.ca ? { ca: options.ca } : {}),
      });
      ws.once("open", () => resolve(new RawClient(ws)));
      ws.once("error", reject);
      ws.once("unexpected-response", (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
  }

  /** Connects and sends `hello`. */
  static async greeted(url: string, options: ConnectOptions = {}): Promise<RawClient> {
    const client = await RawClient.connect(url, options);
    const reply = await client.request("hello", { protocolVersion: PROTOCOL_VERSION });
    if (!reply.ok) throw new Error(`hello failed: ${JSON.stringify(reply)}`);
    return client;
  }

  sendRaw(data: string | Buffer, binary = false): void {
    this.ws.send(data, { binary });
  }

  send(message: unknown): void {
    this.ws.send(JSON.stringify(message));
  }

  /**
   * Sends a request and resolves with its response (ok or error), waiting up to `timeoutMs`: 5 s,
   * or 60 s for a request that may hash a password (those queue for one scrypt thread running below
   * the relay's priority, and take tens of seconds on a loaded machine).
   */
  async request(
    type: string,
    params: unknown = {},
    timeoutMs?: number,
  ): Promise<Extract<ServerMessage, { type: "response" }>> {
    const requestId = `t${nextRequest++}`;
    this.send({ type, requestId, params });
    return this.waitFor(
      (m): m is Extract<ServerMessage, { type: "response" }> => m.type === "response" && m.requestId === requestId,
      `response to ${type}`,
      timeoutMs ?? (HASHING_REQUESTS.has(type) ? HASHING_TIMEOUT_MS : undefined),
    );
  }

  /** Like `request` but throws unless ok; returns the result. */
  async call<T = Record<string, unknown>>(type: string, params: unknown = {}): Promise<T> {
    const reply = await this.request(type, params);
    if (!reply.ok) throw new Error(`${type} failed: ${reply.error.code} ${reply.error.message}`);
    return reply.result as T;
  }

  /** Resolves with the first received message (past or future, after `from`) matching `match`. */
  waitFor<T extends ServerMessage>(
    match: (m: ServerMessage) => m is T,
    what: string,
    timeoutMs?: number,
    from?: number,
  ): Promise<T>;
  waitFor(
    match: (m: ServerMessage) => boolean,
    what: string,
    timeoutMs?: number,
    from?: number,
  ): Promise<ServerMessage>;
  waitFor(match: (m: ServerMessage) => boolean, what: string, timeoutMs = 5000, from = 0): Promise<ServerMessage> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.received.slice(from).find(match);
        if (found) {
          cleanup();
          resolve(found);
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`Timed out waiting for ${what}; received: ${this.frames.slice(-5).join(" | ")}`));
      }, timeoutMs);
      const waiter = () => void check();
      const cleanup = () => {
        clearTimeout(timer);
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
      };
      if (!check()) this.#waiters.push(waiter);
    });
  }

  /** Waits for an event by name (optionally matching its data), looking at messages from index `from`. */
  event(name: string, match: (data: Record<string, unknown>) => boolean = () => true, from = 0) {
    return this.waitFor(
      (m) => m.type === "event" && m.event === name && match(m.data as Record<string, unknown>),
      `event ${name}`,
      5000,
      from,
    ) as unknown as Promise<{ type: "event"; event: string; data: Record<string, unknown> }>;
  }

  events(name: string): Record<string, unknown>[] {
    return this.received
      .filter((m) => m.type === "event" && m.event === name)
      .map((m) => (m as { data: Record<string, unknown> }).data);
  }

  close(): void {
    this.ws.close();
  }

  #notify(): void {
    for (const waiter of [...this.#waiters]) waiter();
  }
}

export const TEST_PASSWORD = "correct horse battery";

/** A greeted client that registered `username` (password TEST_PASSWORD) and is logged in. */
export async function registered(
  url: string,
  username: string,
  extra: Record<string, unknown> = {},
): Promise<{ client: RawClient; token: string; userId: number }> {
  const client = await RawClient.greeted(url);
  const result = await client.call<{ token: string; user: { id: number } }>("auth.register", {
    username,
    password: TEST_PASSWORD,
    ...extra,
  });
  return { client, token: result.token, userId: result.user.id };
}

/** A greeted client logged in as `username`. */
export async function loggedIn(url: string, username: string, password = TEST_PASSWORD, deviceName?: string) {
  const client = await RawClient.greeted(url);
  const result = await client.call<{ token: string; sessionId: number; user: { id: number } }>("auth.login", {
    username,
    password,
    ...(deviceName ? { deviceName } : {}),
  });
  return { client, token: result.token, userId: result.user.id, sessionId: result.sessionId };
}
