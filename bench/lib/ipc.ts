import type { ChildProcess } from "node:child_process";

/** Request/response over a Node IPC channel, in both directions. */
export type Handlers = Record<string, (args: never) => unknown>;

interface Message {
  rpc: true;
  id: number;
  cmd?: string;
  args?: unknown;
  ok?: boolean;
  result?: unknown;
  error?: string;
}

interface Channel {
  send?: ((message: Message) => boolean) | undefined;
  on(event: "message", listener: (message: unknown) => void): unknown;
}

export class Rpc {
  readonly #channel: Channel;
  readonly #handlers: Handlers;
  readonly #pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  #nextId = 1;

  constructor(channel: Channel | ChildProcess | NodeJS.Process, handlers: Handlers = {}) {
    this.#channel = channel as Channel;
    this.#handlers = handlers;
    this.#channel.on("message", (raw) => void this.#onMessage(raw as Message));
  }

  call<T = unknown>(cmd: string, args: unknown = {}): Promise<T> {
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.#send({ rpc: true, id, cmd, args });
    });
  }

  /** Rejects every pending call (the other side exited). */
  failAll(reason: string): void {
    for (const pending of this.#pending.values()) pending.reject(new Error(reason));
    this.#pending.clear();
  }

  #send(message: Message): void {
    if (!this.#channel.send) throw new Error("no IPC channel");
    this.#channel.send(message);
  }

  async #onMessage(message: Message): Promise<void> {
    if (message?.rpc !== true) return;
    if (message.cmd === undefined) {
      const pending = this.#pending.get(message.id);
      if (!pending) return;
      this.#pending.delete(message.id);
      if (message.ok) pending.resolve(message.result);
      else pending.reject(new Error(message.error ?? "failed"));
      return;
    }
    const handler = this.#handlers[message.cmd] as ((args: unknown) => unknown) | undefined;
    try {
      if (!handler) throw new Error(`unknown command ${message.cmd}`);
      const result = await handler(message.args);
      this.#send({ rpc: true, id: message.id, ok: true, result });
    } catch (error) {
      this.#send({ rpc: true, id: message.id, ok: false, error: (error as Error).stack ?? String(error) });
    }
  }
}
