import type { SessionSlice } from "./session-slice.js";
import type { StateAccess } from "./softphone-state.js";

const AUTO_AWAY_MS = 10 * 60_000;

/**
 * Sets the status to away after ten idle minutes outside a call, and back to available at the
 * next sign of the user (pointer, keys, wheel, touch) if it was this watch that set it away.
 */
export class AutoAway {
  readonly #state: StateAccess;
  readonly #session: SessionSlice;
  #lastActivity = Date.now();
  #away = false;

  constructor(state: StateAccess, session: SessionSlice) {
    this.#state = state;
    this.#session = session;
  }

  /** A status set by hand, or a new sign-in: the user's activity no longer restores "available". */
  cancel(): void {
    this.#away = false;
  }

  start(): void {
    const active = () => {
      this.#lastActivity = Date.now();
      if (this.#away) {
        this.#away = false;
        const client = this.#session.client;
        if (this.#state.get().self?.status === "away" && client?.connectionState === "connected")
          void client.setStatus("available").then(
            (self) => this.#session.selfChanged(self),
            () => {},
          );
      }
    };
    for (const type of ["pointerdown", "keydown", "wheel", "touchstart"]) window.addEventListener(type, active, true);
    let lastMove = 0;
    window.addEventListener(
      "pointermove",
      () => {
        const now = Date.now();
        if (now - lastMove > 5000) {
          lastMove = now;
          active();
        }
      },
      true,
    );
    setInterval(() => {
      const client = this.#session.client;
      const state = this.#state.get();
      if (
        state.phase === "signedIn" &&
        !state.call &&
        state.self?.status === "available" &&
        client?.connectionState === "connected" &&
        Date.now() - this.#lastActivity > AUTO_AWAY_MS
      ) {
        this.#away = true;
        void client.setStatus("away").then(
          (self) => this.#session.selfChanged(self),
          () => {},
        );
      }
    }, 30_000);
  }
}
