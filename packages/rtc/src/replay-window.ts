import { RocTracker } from "./srtp.js";

/** How many packet indexes behind the highest one the window remembers (RFC 3711 3.3.2: at least 64). */
export const REPLAY_WINDOW_SIZE = 128;
const WORDS = REPLAY_WINDOW_SIZE / 32;

/** What `ReplayWindow.check` says of a packet index. */
export const ReplayVerdict = {
  /** Not seen before and within (or ahead of) the window: may be authenticated and accepted. */
  FRESH: 0,
  /** Seen before: a duplicate or a replay. */
  REPLAY: 1,
  /** Behind the window: too old to tell, so dropped (RFC 3711 3.3.2). */
  TOO_OLD: 2,
} as const;
export type ReplayVerdict = (typeof ReplayVerdict)[keyof typeof ReplayVerdict];

/**
 * RFC 3711 3.3.2 replay protection for one SSRC: the highest packet index received (ROC * 2^16 +
 * SEQ, 48 bits) and a bitmap of which of the `REPLAY_WINDOW_SIZE` indexes up to it were received.
 * `check` comes before decrypting (cheap, rejects replays without spending crypto on them);
 * `accept` only after the packet authenticated, so a forged packet cannot move the window.
 *
 * The bitmap is a ring over the index's low bits (index mod 128 names the bit), four 32-bit words
 * allocated once: moving the window forward clears the bits of the indexes it skips.
 */
export class ReplayWindow {
  #init = false;
  #highest = 0;
  readonly #bits = new Uint32Array(WORDS);

  /** The highest index accepted (-1 before the first packet). */
  get highest(): number {
    return this.#init ? this.#highest : -1;
  }

  check(index: number): ReplayVerdict {
    if (!this.#init || index > this.#highest) return ReplayVerdict.FRESH;
    if (this.#highest - index >= REPLAY_WINDOW_SIZE) return ReplayVerdict.TOO_OLD;
    // `& 127` keeps the low bits of integers beyond 2^32 too (ToInt32 is modulo 2^32).
    const bit = index & (REPLAY_WINDOW_SIZE - 1);
    return this.#bits[bit >>> 5]! & (1 << (bit & 31)) ? ReplayVerdict.REPLAY : ReplayVerdict.FRESH;
  }

  /** Records an authenticated packet's index (call only after `check` said FRESH). */
  accept(index: number): void {
    const bits = this.#bits;
    if (!this.#init) {
      this.#init = true;
      this.#highest = index;
    } else if (index > this.#highest) {
      const advance = index - this.#highest;
      if (advance >= REPLAY_WINDOW_SIZE) bits.fill(0);
      else {
        for (let i = this.#highest + 1; i < index; i++) {
          const skipped = i & (REPLAY_WINDOW_SIZE - 1);
          bits[skipped >>> 5]! &= ~(1 << (skipped & 31));
        }
      }
      this.#highest = index;
    } else if (this.#highest - index >= REPLAY_WINDOW_SIZE) {
      return;
    }
    const bit = index & (REPLAY_WINDOW_SIZE - 1);
    bits[bit >>> 5]! |= 1 << (bit & 31);
  }
}

/** What the relay keeps of one SSRC it receives: its rollover counter and its replay window. */
export interface ReceivedStream {
  readonly rocs: RocTracker;
  readonly replay: ReplayWindow;
}

export function receivedStream(): ReceivedStream {
  return { rocs: new RocTracker(), replay: new ReplayWindow() };
}

/** RFC 3711 packet index: ROC * 2^16 + SEQ. */
export function packetIndex(roc: number, seq: number): number {
  return roc * 0x10000 + seq;
}
