import type { NativePlane, NativePlaneModule } from "@parley/rtc";
import type { Logger } from "../logging/logger.js";
import { type NativeAttachment, NativeRtpPath } from "./native-rtp-path.js";
import { ThreadPlacement } from "./thread-placement.js";

/** How often the relay reads its native legs' speaking state (the totals are read when asked for). */
export const NATIVE_POLL_MS = 100;
/** Every this many polls, the legs follow werift's nominated pair and ICE consent (~1 s). */
const SYNC_EVERY_POLLS = 10;

/**
 * The relay's native data plane: one NativePlane (its media threads started with the first leg,
 * stopped when the relay closes), the placement of legs on threads (a call's legs together,
 * calls by load), and one relay-wide timer that reads every native leg's "speaking" changes and,
 * once a second, its nominated pair and consent. No timer per leg, and none while no leg is
 * native. The forwarded and dropped totals are added up when they are read (`harvest`, from
 * MediaRelay.stats and drops), not on every poll.
 */
export class NativeMedia {
  readonly threads: number;
  readonly #module: NativePlaneModule;
  readonly #ioUring: boolean;
  readonly #logger: Logger;
  readonly #placement: ThreadPlacement;
  readonly #paths = new Set<NativeRtpPath>();
  #plane: NativePlane | null = null;
  #timer: NodeJS.Timeout | undefined;
  #polls = 0;
  #closed = false;

  constructor(module: NativePlaneModule, threads: number, ioUring: boolean, logger: Logger) {
    this.#module = module;
    this.#ioUring = ioUring;
    this.#logger = logger;
    this.threads = Math.max(1, Math.floor(threads));
    this.#placement = new ThreadPlacement(this.threads);
  }

  /**
   * Moves a connected leg onto the plane, on its group's thread (or the least loaded one for a
   * new group), or tells why it cannot.
   */
  attach(attachment: NativeAttachment, group: string | undefined): NativeRtpPath | string {
    if (this.#closed) return "the native plane is closed";
    let plane = this.#plane;
    if (!plane) {
      try {
        plane = this.#module.createPlane(this.threads, { ioUring: this.#ioUring });
      } catch (error) {
        return `the native plane's threads did not start: ${(error as Error).message}`;
      }
      const batching = plane.batching;
      if (batching === "io_uring")
        this.#logger.info({ threads: this.threads }, "native media threads batch through io_uring");
      else
        this.#logger.info(
          { threads: this.threads, reason: batching },
          "native media threads make one system call per socket",
        );
      this.#plane = plane;
    }
    const thread = this.#placement.place(group);
    const path = NativeRtpPath.attach(attachment, plane, thread, (gone) => {
      this.#paths.delete(gone);
      this.#placement.release(gone.thread, group);
      if (this.#paths.size === 0) this.#stopPolling();
    });
    if (typeof path === "string") {
      this.#placement.release(thread, group);
      return path;
    }
    this.#paths.add(path);
    this.#startPolling();
    return path;
  }

  /** Live native legs per media thread. */
  get load(): readonly number[] {
    return this.#placement.load;
  }

  /** Adds every native leg's latest forwarded and dropped counts to the relay's totals. */
  harvest(): void {
    for (const path of this.#paths) path.harvest();
  }

  /** Takes every leg off and stops the media threads. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const path of [...this.#paths]) path.detach();
    this.#stopPolling();
    this.#plane?.close();
    this.#plane = null;
  }

  #startPolling(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => this.#poll(), NATIVE_POLL_MS);
    this.#timer.unref();
  }

  #stopPolling(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #poll(): void {
    const sync = ++this.#polls % SYNC_EVERY_POLLS === 0;
    for (const path of this.#paths) path.poll(sync);
  }
}
