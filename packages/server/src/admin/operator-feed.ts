import type { Logger } from "pino";
import type { Device, PresenceService } from "../presence/presence-service.js";
import type { OperatorService } from "./operator-service.js";

/** How often subscribed operator pages get a fresh snapshot. */
export const OPERATOR_FEED_INTERVAL_MS = 1000;

/**
 * Keeps the web operator pages live: every second, one snapshot is built and pushed as an
 * `operator.snapshot` event to every subscribed device whose user is still an operator. A device
 * leaves on `operator.unsubscribe`, when it disconnects or logs out, or when its role is revoked.
 * The timer runs only while someone is subscribed.
 */
export class OperatorFeed {
  readonly #subscribers = new Set<Device>();
  readonly #operator: OperatorService;
  readonly #logger: Logger;
  readonly #intervalMs: number;
  #timer: NodeJS.Timeout | undefined;
  #soon: NodeJS.Timeout | undefined;
  #busy = false;

  constructor(deps: {
    operator: OperatorService;
    presence: PresenceService;
    logger: Logger;
    intervalMs?: number;
  }) {
    this.#operator = deps.operator;
    this.#logger = deps.logger;
    this.#intervalMs = deps.intervalMs ?? OPERATOR_FEED_INTERVAL_MS;
    deps.presence.on("deviceDetached", (device) => this.unsubscribe(device));
  }

  get size(): number {
    return this.#subscribers.size;
  }

  subscribe(device: Device): void {
    this.#subscribers.add(device);
    if (!this.#timer) {
      this.#timer = setInterval(() => void this.#tick(), this.#intervalMs);
      this.#timer.unref();
    }
  }

  unsubscribe(device: Device): void {
    this.#subscribers.delete(device);
    if (this.#subscribers.size === 0) this.#stop();
  }

  /**
   * An operator action changed something: push a fresh snapshot shortly (coalescing a burst)
   * instead of waiting up to a second, so the page shows the effect with the action's result.
   */
  refreshSoon(): void {
    if (this.#subscribers.size === 0 || this.#soon) return;
    this.#soon = setTimeout(() => {
      this.#soon = undefined;
      void this.#tick();
    }, 50);
    this.#soon.unref();
  }

  close(): void {
    this.#subscribers.clear();
    this.#stop();
  }

  #stop(): void {
    clearInterval(this.#timer);
    clearTimeout(this.#soon);
    this.#timer = undefined;
    this.#soon = undefined;
  }

  async #tick(): Promise<void> {
    // A slow snapshot (many legs' stats) is never overlapped by the next one.
    if (this.#busy) return;
    this.#busy = true;
    try {
      for (const device of [...this.#subscribers]) {
        if (!(await this.#operator.isOperator(device.userId))) this.unsubscribe(device);
      }
      if (this.#subscribers.size === 0) return;
      const snapshot = await this.#operator.snapshot();
      for (const device of this.#subscribers) device.push("operator.snapshot", snapshot);
    } catch (error) {
      this.#logger.error({ err: error }, "operator snapshot failed");
    } finally {
      this.#busy = false;
    }
  }
}
