import { PROTOCOL_VERSION } from "@parley/protocol";
import WebSocket from "ws";

/**
 * A lean signaling client for load: one WebSocket, requests matched by id, events handed on
 * without parsing unless someone listens for them (a loaded generator must not spend its CPU on
 * the presence events every login broadcasts to everyone).
 */
export class SignalClient {
  readonly ws: WebSocket;
  #nextId = 1;
  readonly #pending = new Map<string, { resolve(v: unknown): void; reject(e: Error): void }>();
  /** Parsed call.* events. */
  onCallEvent: ((event: string, data: Record<string, unknown>, at: number) => void) | undefined;
  /** Raw presence.changed frames (parse only what you need). */
  onPresence: ((text: string, at: number) => void) | undefined;
  eventsReceived = 0;
  closed = false;

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on("message", (data) => this.#onMessage(data.toString()));
    ws.on("close", () => {
      this.closed = true;
      for (const pending of this.#pending.values()) pending.reject(new Error("connection closed"));
      this.#pending.clear();
    });
    ws.on("error", () => undefined);
  }

  static open(url: string): Promise<SignalClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { perMessageDeflate: false, skipUTF8Validation: true });
      ws.once("open", () => resolve(new SignalClient(ws)));
      ws.once("error", reject);
    });
  }

  /** Connects, says hello and resumes the session `token`. */
  static async resumed(url: string, token: string): Promise<SignalClient> {
    const client = await SignalClient.open(url);
    await client.hello();
    await client.request("auth.resume", { token });
    return client;
  }

  hello(): Promise<unknown> {
    return this.request("hello", { protocolVersion: PROTOCOL_VERSION, client: { name: "parley-bench", version: "1" } });
  }

  request<T = Record<string, unknown>>(type: string, params: unknown = {}, timeoutMs = 30_000): Promise<T> {
    if (this.closed || this.ws.readyState !== WebSocket.OPEN) return Promise.reject(new Error("connection closed"));
    const requestId = String(this.#nextId++);
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(requestId);
        reject(new Error(`${type} timed out`));
      }, timeoutMs);
      this.#pending.set(requestId, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.ws.send(JSON.stringify({ type, requestId, params }));
    });
  }

  close(): void {
    this.ws.close();
  }

  #onMessage(text: string): void {
    const at = performance.now();
    if (text.startsWith('{"type":"event"')) {
      this.eventsReceived++;
      if (text.startsWith('{"type":"event","event":"presence.')) {
        this.onPresence?.(text, at);
        return;
      }
      if (text.startsWith('{"type":"event","event":"call.') && this.onCallEvent) {
        const message = JSON.parse(text) as { event: string; data: Record<string, unknown> };
        this.onCallEvent(message.event, message.data, at);
      }
      return;
    }
    const message = JSON.parse(text) as {
      type: string;
      requestId: string | null;
      ok: boolean;
      result?: unknown;
      error?: { code: string; message: string };
    };
    if (message.type !== "response" || message.requestId === null) return;
    const pending = this.#pending.get(message.requestId);
    if (!pending) return;
    this.#pending.delete(message.requestId);
    if (message.ok) pending.resolve(message.result);
    else pending.reject(new Error(`${message.error?.code}: ${message.error?.message}`));
  }
}
