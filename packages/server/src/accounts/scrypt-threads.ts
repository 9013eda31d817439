import { Worker } from "node:worker_threads";
import type { ScryptJob } from "./scrypt-worker.js";

interface Pending {
  job: ScryptJob;
  resolve(key: Buffer): void;
  reject(error: Error): void;
}

/**
 * scrypt on dedicated worker threads at a lower CPU priority. libuv's thread pool (where
 * `crypto.scrypt` runs) shares the process's priority, so on a busy core every password check
 * (0.3 s of CPU by design) competes with the event loop that relays calls' audio: a flood of
 * logins then delays packets. These threads lower their own priority (nice 10, Linux), so the
 * kernel runs the event loop first and hashing takes what is left. Threads start on first use and
 * do not keep the process alive while idle. Admission control (how many jobs may wait) is the
 * caller's: this runs `size` jobs at once and queues the rest in order.
 */
export class ScryptThreads {
  readonly #size: number;
  readonly #idle: Worker[] = [];
  readonly #busy = new Map<Worker, Pending>();
  readonly #queue: Pending[] = [];
  #started = 0;
  #nextId = 1;

  constructor(size: number) {
    this.#size = Math.max(1, size);
  }

  derive(password: string, salt: Buffer, keyLength: number, options: ScryptJob["options"]): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ job: { id: this.#nextId++, password, salt, keyLength, options }, resolve, reject });
      this.#pump();
    });
  }

  /** Stops every thread; jobs still queued or running fail. */
  async close(): Promise<void> {
    const workers = [...this.#idle, ...this.#busy.keys()];
    this.#idle.length = 0;
    for (const pending of [...this.#queue, ...this.#busy.values()]) pending.reject(new Error("scrypt threads closed"));
    this.#queue.length = 0;
    this.#busy.clear();
    this.#started = 0;
    await Promise.all(workers.map((w) => w.terminate()));
  }

  #pump(): void {
    while (this.#queue.length > 0) {
      const worker = this.#idle.pop() ?? (this.#started < this.#size ? this.#start() : undefined);
      if (!worker) return;
      const pending = this.#queue.shift()!;
      this.#busy.set(worker, pending);
      worker.ref();
      worker.postMessage(pending.job);
    }
  }

  #start(): Worker {
    this.#started++;
    const worker = new Worker(new URL("./scrypt-worker.js", import.meta.url));
    worker.on("message", (message: { id: number; key?: Uint8Array; error?: string }) => {
      const pending = this.#busy.get(worker);
      this.#busy.delete(worker);
      worker.unref();
      this.#idle.push(worker);
      if (pending) {
        if (message.key)
          pending.resolve(Buffer.from(message.key.buffer, message.key.byteOffset, message.key.byteLength));
        else pending.reject(new Error(message.error ?? "scrypt failed"));
      }
      this.#pump();
    });
    worker.on("error", (error) => this.#lost(worker, error));
    worker.on("exit", () => this.#lost(worker, new Error("scrypt thread exited")));
    return worker;
  }

  /** A thread died (out of memory, say): its job fails, a new thread takes the queue. */
  #lost(worker: Worker, error: Error): void {
    const pending = this.#busy.get(worker);
    const idleAt = this.#idle.indexOf(worker);
    if (!pending && idleAt < 0) return;
    this.#busy.delete(worker);
    if (idleAt >= 0) this.#idle.splice(idleAt, 1);
    this.#started--;
    pending?.reject(error);
    this.#pump();
  }
}
