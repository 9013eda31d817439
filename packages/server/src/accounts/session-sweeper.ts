import type { Logger } from "pino";
import type { Device, PresenceService } from "../presence/presence-service.js";
import type { AccountService } from "./account-service.js";

/** The longest delay setTimeout honours (about 24.8 days); longer ones are re-armed on firing. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Sweeps run at most this far apart (and a connected session's `last_seen_at` lags at most this). */
const MAX_SWEEP_MS = 10 * 60_000;
const MIN_SWEEP_MS = 250;

/**
 * How often sessions are swept: every 10 minutes, or more often when a lifetime is shorter
 * (a quarter of the shortest of the idle and absolute limits, at least 250 ms).
 */
export function sweepIntervalMs(config: { sessionTtlMs: number; sessionIdleMs: number }): number {
  const shortest = Math.min(config.sessionTtlMs, config.sessionIdleMs > 0 ? config.sessionIdleMs : Infinity);
  return Math.max(MIN_SWEEP_MS, Math.min(MAX_SWEEP_MS, Math.floor(shortest / 4)));
}

/**
 * Ends sessions on time. At start and every sweep interval it marks the sessions of connected
 * devices as used (so a session in use never goes idle, at one write per device per interval,
 * not per message), then deletes every expired or idle session, closing any connection still on
 * one (SESSION_EXPIRED). Each connected device also has a timer at its session's absolute expiry,
 * so an open connection is closed at that moment, not at the next sweep. A device that
 * disconnects marks its session used as it goes.
 *
 * With several server processes on one database, a session another process ended is missing
 * when its devices here are marked used: they are closed (SESSION_REVOKED) at that sweep, and a
 * sweep runs at once when the connection to the database comes back after a loss (the other
 * processes' messages may have been missed meanwhile).
 */
export class SessionSweeper {
  readonly #accounts: AccountService;
  readonly #presence: PresenceService;
  readonly #logger: Logger;
  readonly #intervalMs: number;
  readonly #expiryTimers = new Map<Device, NodeJS.Timeout>();
  readonly #unsubscribe: (() => void)[] = [];
  #interval: NodeJS.Timeout | undefined;
  #sweeping: Promise<void> | undefined;
  #closed = false;

  constructor(deps: {
    accounts: AccountService;
    presence: PresenceService;
    logger: Logger;
    config: { sessionTtlMs: number; sessionIdleMs: number };
  }) {
    this.#accounts = deps.accounts;
    this.#presence = deps.presence;
    this.#logger = deps.logger;
    this.#intervalMs = sweepIntervalMs(deps.config);
  }

  /** Sweeps now, then every interval; arms the expiry timer of every device that connects. */
  start(): void {
    if (this.#closed || this.#interval) return;
    this.#unsubscribe.push(
      this.#presence.on("deviceAttached", (device) => this.#arm(device)),
      this.#presence.on("deviceDetached", (device) => this.#detached(device)),
      this.#accounts.on("resync", () => void this.sweep()),
    );
    for (const device of this.#presence.allDevices()) this.#arm(device);
    void this.sweep();
    this.#interval = setInterval(() => void this.sweep(), this.#intervalMs);
    this.#interval.unref();
  }

  /**
   * Keeps connected sessions current, closes devices whose session is gone, then deletes the
   * expired and idle ones. One sweep at a time: a call meanwhile waits for the running one.
   */
  sweep(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#sweeping ??= this.#sweepOnce().finally(() => {
      this.#sweeping = undefined;
    });
    return this.#sweeping;
  }

  async #sweepOnce(): Promise<void> {
    try {
      const devices = this.#presence.allDevices();
      const alive = new Set(await this.#accounts.sessions.touch(...new Set(devices.map((d) => d.sessionId))));
      this.#closeGone(devices.filter((device) => !alive.has(device.sessionId)));
      const ended = await this.#accounts.expireSessions();
      if (ended > 0) this.#logger.info({ sessions: ended }, "expired sessions purged");
    } catch (error) {
      // A failing sweep (a busy disk, the database unreachable) is retried at the next interval.
      this.#logger.error({ err: error }, "session sweep failed");
    }
  }

  /** Devices whose session was deleted elsewhere (another process) and are still attached. */
  #closeGone(devices: Device[]): void {
    for (const device of devices) {
      if (!this.#presence.isAttached(device)) continue;
      this.#logger.info({ device: device.id, sessionId: device.sessionId }, "session ended elsewhere");
      device.close("SESSION_REVOKED");
    }
  }

  /** Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#interval);
    for (const unsubscribe of this.#unsubscribe) unsubscribe();
    for (const timer of this.#expiryTimers.values()) clearTimeout(timer);
    this.#expiryTimers.clear();
  }

  #arm(device: Device): void {
    if (this.#closed) return;
    clearTimeout(this.#expiryTimers.get(device));
    this.#expiryTimers.delete(device);
    this.#accounts.sessions.byId(device.sessionId).then(
      (session) => {
        // Already ended (its revocation closes the connection), or gone or re-armed meanwhile.
        if (!session || this.#closed || !this.#presence.isAttached(device) || this.#expiryTimers.has(device)) return;
        const delay = Math.max(0, Date.parse(session.expires_at) - Date.now());
        const timer = setTimeout(() => this.#expiryDue(device, session.expires_at), Math.min(delay, MAX_TIMER_MS));
        timer.unref();
        this.#expiryTimers.set(device, timer);
      },
      (error: unknown) => this.#logger.warn({ err: error, device: device.id }, "session expiry not armed"),
    );
  }

  #expiryDue(device: Device, expiresAt: string): void {
    this.#expiryTimers.delete(device);
    if (this.#closed) return;
    if (Date.parse(expiresAt) > Date.now()) {
      this.#arm(device); // a lifetime longer than one timer, or a timer a tick early
      return;
    }
    this.#logger.info({ device: device.id, sessionId: device.sessionId }, "session reached its expiry");
    // One purge ends every session due by now (many may fall due together), not a full sweep each.
    this.#accounts.expireSessions().catch((error: unknown) => {
      this.#logger.error({ err: error }, "could not end an expired session");
    });
  }

  #detached(device: Device): void {
    clearTimeout(this.#expiryTimers.get(device));
    this.#expiryTimers.delete(device);
    if (this.#closed) return;
    this.#accounts.sessions.touch(device.sessionId).catch((error: unknown) => {
      this.#logger.warn({ err: error }, "could not mark a session used");
    });
  }
}
