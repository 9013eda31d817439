import {
  type EventMessage,
  isErrorCode,
  ParleyError,
  type RequestParams,
  type RequestResult,
  type RequestType,
  type ServerMessage,
} from "@parley/protocol";

/** The subset of the WebSocket API the SDK uses: the browser's WebSocket and `ws` both fit. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}

export type WebSocketFactory = (url: string) => WebSocketLike;

/** No reply came in time (the connection may be dead). */
export class RequestTimeoutError extends Error {}

interface Pending {
  resolve(result: unknown): void;
  reject(error: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

/**
 * Wire layer: one WebSocket, requests matched to responses by `requestId`, events handed to
 * `onEvent`. Pending requests are rejected when the connection closes.
 */
export class SignalingChannel {
  onEvent: ((message: EventMessage) => void) | undefined;
  onClose: ((code: number, reason: string) => void) | undefined;
  readonly #ws: WebSocketLike;
  readonly #pending = new Map<string, Pending>();
  readonly #timeoutMs: number;
  #nextId = 1;
  #closed = false;

  private constructor(ws: WebSocketLike, timeoutMs: number) {
    this.#ws = ws;
    this.#timeoutMs = timeoutMs;
    ws.onmessage = (event) => this.#onMessage(event.data);
    ws.onclose = (event) => this.#onClosed(event.code, event.reason);
  }

  static open(url: string, factory: WebSocketFactory, timeoutMs = 15_000): Promise<SignalingChannel> {
    return new Promise((resolve, reject) => {
      const ws = factory(url);
      // A network that drops packets never answers: give up after `timeoutMs` (the caller retries).
      const timer = setTimeout(() => {
        reject(new Error(`Cannot connect to ${url}: no answer within ${timeoutMs} ms`));
        ws.close();
      }, timeoutMs);
      ws.onopen = () => {
        clearTimeout(timer);
        resolve(new SignalingChannel(ws, timeoutMs));
      };
      ws.onerror = () => {
        clearTimeout(timer);
        reject(new Error(`Cannot connect to ${url}`));
      };
      ws.onclose = (event) => {
        clearTimeout(timer);
        reject(new Error(`Connection to ${url} closed (${event.code})`));
      };
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  request<T extends RequestType>(
    type: T,
    params: RequestParams<T>,
    timeoutMs = this.#timeoutMs,
  ): Promise<RequestResult<T>> {
    if (this.#closed) return Promise.reject(new Error("The connection is closed."));
    const requestId = String(this.#nextId++);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(requestId);
        reject(new RequestTimeoutError(`Request '${type}' timed out.`));
      }, timeoutMs);
      this.#pending.set(requestId, { resolve: resolve as (r: unknown) => void, reject, timer });
      this.#ws.send(JSON.stringify({ type, requestId, params }));
    });
  }

  close(code = 1000, reason = "NORMAL"): void {
    this.#ws.close(code, reason);
  }

  /**
   * Gives the connection up as dead (the network went: nothing answers, not even a close): closes
   * it at once as 1006, without waiting for a close handshake that will never come.
   */
  abandon(): void {
    try {
      this.#ws.close();
    } catch {
      // already closing
    }
    this.#onClosed(1006, "");
  }

  #onMessage(data: unknown): void {
    let message: ServerMessage;
    try {
      message = JSON.parse(String(data)) as ServerMessage;
    } catch {
      return;
    }
    if (message.type === "event") {
      this.onEvent?.(message);
      return;
    }
    if (message.type !== "response" || message.requestId === null) return;
    const pending = this.#pending.get(message.requestId);
    if (!pending) return;
    this.#pending.delete(message.requestId);
    clearTimeout(pending.timer);
    if (message.ok) pending.resolve(message.result);
    else
      pending.reject(
        new ParleyError(isErrorCode(message.error.code) ? message.error.code : "INTERNAL_ERROR", message.error.message),
      );
  }

  #onClosed(code: number, reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const pending of this.#pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(new Error(`Connection closed (${code} ${reason}) before the reply.`));
    }
    this.#pending.clear();
    this.onClose?.(code, reason);
  }
}
