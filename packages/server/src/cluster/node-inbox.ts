import type { Redis } from "ioredis";
import type { Logger } from "pino";
import { commandConnection, listeningConnection } from "./redis-connections.js";

/** The Redis stream that holds the messages sent to `node`. */
export const inboxKey = (node: string) => `parley:node:${node}:inbox`;

/** Messages kept per inbox (approximate trim): minutes of a busy node's call traffic. */
const INBOX_MAX_LENGTH = 10_000;
/** An inbox nobody writes to for this long is removed (a node that died without cleaning up). */
const INBOX_IDLE_MS = 60 * 60_000;
/** How long one blocking read waits for a message before it reads again. */
const READ_BLOCK_MS = 2_000;
/** Messages read at once. */
const READ_BATCH = 200;
/** Pause before reading again after a failed read (Redis away: the connection reconnects meanwhile). */
const READ_RETRY_MS = 250;
/** A write not answered in this time counts as failed. */
const WRITE_TIMEOUT_MS = 3_000;
/** How often messages that could not be written are tried again. */
const RESEND_INTERVAL_MS = 250;
/** A message still unwritten after this long is given up (and logged). */
const RESEND_GIVE_UP_MS = 30_000;
/** Messages waiting to be written to one node, at most (beyond: the oldest are given up). */
const RESEND_MAX_QUEUED = 5_000;

interface Waiting {
  body: string;
  since: number;
  /** Kept and written again while Redis cannot take it (else refused at the first failure). */
  resend: boolean;
  /** Settles the sender's promise: once written (or queued, for `resend`), or refused. */
  settle?: { resolve: () => void; reject: (error: Error) => void };
}

/**
 * Messages between nodes that must not be lost to a dropped connection (call answers, hang-ups,
 * devices that left): each node reads its own Redis stream (`parley:node:<id>:inbox`) from the last
 * entry it has seen, so a reader whose connection dropped reads on from where it stopped when it is
 * back, instead of missing what was published meanwhile as a pub/sub subscriber would. A message
 * that cannot be written (Redis unreachable) may be kept and written again, in order, when Redis is
 * back (`send` with `resend`); the messages carry their sender's sequence numbers, so the receiver
 * drops one it sees twice. What Redis held when it restarted without persistence is lost: the
 * sequence numbers then show the gap.
 *
 * Two connections of its own: one that writes (no offline queue: a write that cannot go fails at
 * once), one that blocks reading.
 */
export class NodeInbox {
  readonly #node: string;
  readonly #writer: Redis;
  readonly #reader: Redis;
  readonly #logger: Logger;
  readonly #onMessage: (body: string) => void;
  /** Per receiving node: messages waiting to be written again, oldest first. */
  readonly #waiting = new Map<string, Waiting[]>();
  /** Nodes whose queue is being written now. */
  readonly #flushing = new Set<string>();
  #resendTimer: NodeJS.Timeout | undefined;
  /** The id of the last entry read from this node's inbox. */
  #lastId = "0";
  #reading: Promise<void> | undefined;
  #closed = false;

  private constructor(deps: { url: string; node: string; logger: Logger; onMessage: (body: string) => void }) {
    this.#node = deps.node;
    this.#logger = deps.logger;
    this.#onMessage = deps.onMessage;
    // A write a stuck connection never answers fails and is tried again (a copy it did make is
    // dropped by the receiver's sequence numbers).
    this.#writer = commandConnection(deps.url, { commandTimeout: WRITE_TIMEOUT_MS });
    this.#reader = listeningConnection(deps.url);
    // The cluster's own connections already report Redis going away.
    for (const connection of [this.#writer, this.#reader]) connection.on("error", () => undefined);
  }

  /**
   * Connects and starts reading this node's inbox from its first entry (a node id is new at every
   * start, so everything in it was sent to this run). `onMessage` gets each message's body in order.
   */
  static async start(deps: {
    url: string;
    node: string;
    logger: Logger;
    onMessage: (body: string) => void;
  }): Promise<NodeInbox> {
    const inbox = new NodeInbox(deps);
    try {
      await inbox.#writer.connect();
      await inbox.#reader.connect();
    } catch (error) {
      inbox.#writer.disconnect();
      inbox.#reader.disconnect();
      throw error;
    }
    inbox.#reading = inbox.#readLoop();
    return inbox;
  }

  /**
   * Writes `body` to `node`'s inbox, after every message sent to `node` before it: all messages to
   * one node go through one queue, so they arrive in the order they were sent (their sequence
   * numbers count up). Without `resend`, the promise resolves once Redis took the message and
   * rejects if it cannot take it now. With `resend`, it resolves once queued, and the message is
   * written again and again while Redis cannot take it, until `RESEND_GIVE_UP_MS` passes. A request
   * someone waits on with a timeout should not be resent (it could be carried out after its sender
   * gave up); events and replies should.
   */
  send(node: string, body: string, resend = false): Promise<void> {
    if (this.#closed) return Promise.reject(new Error("the node's inbox is closed"));
    let queue = this.#waiting.get(node);
    if (!queue) {
      queue = [];
      this.#waiting.set(node, queue);
    }
    const waiting: Waiting = { body, since: Date.now(), resend };
    const done = resend
      ? Promise.resolve()
      : new Promise<void>((resolve, reject) => {
          waiting.settle = { resolve, reject };
        });
    queue.push(waiting);
    if (queue.length > RESEND_MAX_QUEUED) {
      const dropped = queue.splice(0, queue.length - RESEND_MAX_QUEUED);
      for (const w of dropped) w.settle?.reject(new Error("too many messages waiting for Redis"));
      this.#logger.warn({ node }, "messages to another node given up: too many waiting for Redis");
    }
    void this.#flush(node);
    return done;
  }

  /** Messages queued and not yet written, over every node. */
  get waiting(): number {
    let n = 0;
    for (const queue of this.#waiting.values()) n += queue.length;
    return n;
  }

  /** Forgets the messages queued for `node` (declared dead: nobody will read them). */
  forget(node: string): void {
    for (const w of this.#waiting.get(node) ?? []) w.settle?.reject(new Error("the node is gone"));
    this.#waiting.delete(node);
  }

  /**
   * Stops reading, tries once more to write what is queued, and closes both connections; this
   * node's inbox is removed.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#resendTimer);
    this.#reader.disconnect();
    await this.#reading;
    for (const node of [...this.#waiting.keys()]) await this.#flush(node);
    await this.#writer.del(inboxKey(this.#node)).catch(() => undefined);
    await this.#writer.quit().catch(() => this.#writer.disconnect());
  }

  /** Appends `bodies` to `node`'s inbox in one transaction (all or none). */
  #write(node: string, bodies: readonly string[]): Promise<void> {
    const key = inboxKey(node);
    const transaction = this.#writer.multi();
    for (const body of bodies) transaction.xadd(key, "MAXLEN", "~", INBOX_MAX_LENGTH, "*", "m", body);
    return transaction
      .pexpire(key, INBOX_IDLE_MS)
      .exec()
      .then((results) => {
        const failed = results?.find(([error]) => error);
        if (!results || failed) throw failed?.[0] ?? new Error("the write was not carried out");
      });
  }

  /**
   * Writes what is queued for `node`, oldest first, a batch at a time; one flush per node runs at a
   * time, so the order holds. What cannot be written now is tried again in `RESEND_INTERVAL_MS`.
   */
  async #flush(node: string): Promise<void> {
    if (this.#flushing.has(node)) return;
    this.#flushing.add(node);
    try {
      for (;;) {
        const queue = this.#waiting.get(node);
        if (!queue) return;
        const now = Date.now();
        let stale = 0;
        while (stale < queue.length && now - queue[stale]!.since > RESEND_GIVE_UP_MS) stale++;
        if (stale > 0) {
          for (const w of queue.splice(0, stale)) w.settle?.reject(new Error("Redis unreachable for too long"));
          this.#logger.warn({ node, messages: stale }, "messages to another node given up: Redis unreachable too long");
        }
        if (queue.length === 0) {
          this.#waiting.delete(node);
          return;
        }
        const batch = queue.slice(0, READ_BATCH);
        try {
          await this.#write(
            node,
            batch.map((w) => w.body),
          );
        } catch (error) {
          // Those not to be resent are refused now; the others wait for the next try, in order.
          const refused = batch.filter((w) => !w.resend);
          if (refused.length > 0 && this.#waiting.get(node) === queue) {
            const kept = queue.filter((w) => w.resend || !batch.includes(w));
            queue.splice(0, queue.length, ...kept);
          }
          for (const w of refused) w.settle?.reject(error as Error);
          this.#retryLater();
          return;
        }
        for (const w of batch) w.settle?.resolve();
        // What was written leaves the front of the queue (`forget` may have dropped the queue
        // meanwhile, and an overflow the oldest of the batch).
        if (this.#waiting.get(node) === queue) {
          const written = new Set(batch);
          let n = 0;
          while (n < queue.length && written.has(queue[n]!)) n++;
          queue.splice(0, n);
        }
      }
    } finally {
      this.#flushing.delete(node);
    }
  }

  #retryLater(): void {
    if (this.#resendTimer || this.#closed) return;
    this.#resendTimer = setTimeout(() => {
      this.#resendTimer = undefined;
      for (const node of [...this.#waiting.keys()]) void this.#flush(node);
    }, RESEND_INTERVAL_MS);
    this.#resendTimer.unref();
  }

  async #readLoop(): Promise<void> {
    const key = inboxKey(this.#node);
    while (!this.#closed) {
      let answer: [string, [string, string[]][]][] | null;
      try {
        answer = (await this.#reader.xread(
          "COUNT",
          READ_BATCH,
          "BLOCK",
          READ_BLOCK_MS,
          "STREAMS",
          key,
          this.#lastId,
        )) as [string, [string, string[]][]][] | null;
      } catch {
        if (this.#closed) return;
        await new Promise((resolve) => setTimeout(resolve, READ_RETRY_MS).unref());
        continue;
      }
      if (this.#closed) return;
      for (const [, entries] of answer ?? []) {
        for (const [id, fields] of entries) {
          this.#lastId = id;
          const body = fields[1];
          if (body === undefined) continue;
          try {
            this.#onMessage(body);
          } catch (error) {
            this.#logger.error({ err: error }, "message from another node not handled");
          }
        }
      }
    }
  }
}
