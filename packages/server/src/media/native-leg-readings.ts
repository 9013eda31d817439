import { type ReceptionStats, NativeLegStat as S, type SenderReports, slotStat } from "@parley/rtc";
import type { MediaDrops } from "./media-drops.js";
import type { ForwardTotals, MediaLegCounters } from "./media-leg-counters.js";

/** The native plane's per-leg drop counters and the relay-wide reason each one counts as. */
const DROPS: readonly [number, keyof MediaDrops][] = [
  [S.dropReplay, "replay"],
  [S.dropTooOld, "too_old"],
  [S.dropAuthFailed, "auth_failed"],
  [S.dropUnknownSsrc, "unknown_ssrc"],
  [S.dropMalformed, "malformed"],
];

/**
 * What a native leg's statistics array says, in the server's terms: the leg's counters, its
 * reception statistics (the same RFC 3550 A.3/A.8 numbers ReceptionStats keeps on the JS planes),
 * its voice activity, each slot's sender-report counts, and the relay-wide forwarded and dropped
 * totals (added as deltas, so a leg's packets count once however often they are read). The media
 * thread writes the array and JavaScript reads it, with no call across; a value read may be a
 * packet behind, never torn (each is one float64).
 */
export class NativeLegReadings {
  readonly #stats: Float64Array;
  /** The leg's counters from before the native plane took it over. */
  readonly #base: Readonly<MediaLegCounters>;
  /** What `harvest` already added to the relay-wide totals. */
  #packetsOut = 0;
  #bytesOut = 0;
  readonly #drops: number[] = DROPS.map(() => 0);

  constructor(stats: Float64Array, base: MediaLegCounters) {
    this.#stats = stats;
    this.#base = { ...base };
  }

  get speaking(): boolean {
    return this.#stats[S.speaking] !== 0;
  }

  get loudness(): number {
    return this.#stats[S.loudness] ?? 0;
  }

  /** Writes the leg's counters into `into` (the JS counts before the takeover plus the native ones). */
  counters(into: MediaLegCounters): void {
    const s = this.#stats;
    const base = this.#base;
    into.packetsIn = base.packetsIn + s[S.packetsIn]!;
    into.packetsOut = base.packetsOut + s[S.packetsOut]!;
    into.bytesIn = base.bytesIn + s[S.bytesIn]!;
    into.bytesOut = base.bytesOut + s[S.bytesOut]!;
    into.lastPacketAt = Math.max(base.lastPacketAt, s[S.lastPacketAt]!);
  }

  /**
   * Brings `into` up to the native reception statistics of the client's latest SSRC. Its
   * receiver-report interval (fractionLostSinceLast) starts over when the SSRC changes, as
   * ReceptionStats.count does.
   */
  reception(into: ReceptionStats): void {
    const s = this.#stats;
    const ssrc = s[S.ssrc]!;
    if (ssrc < 0) return;
    if (ssrc !== into.ssrc) {
      into.ssrc = ssrc;
      into.expectedPrior = 0;
      into.receivedPrior = 0;
    }
    into.base = s[S.base]!;
    into.max = s[S.max]!;
    into.received = s[S.received]!;
    into.jitter = s[S.jitter]!;
  }

  /** Feeds slot `slot`'s sent packets, octets and last (RTP timestamp, send time) to its sender reports. */
  slotReport(slot: number, reports: SenderReports): void {
    const s = this.#stats;
    const packets = s[slotStat(slot, S.SLOT_PACKETS_SENT)] ?? 0;
    if (packets === 0) return;
    reports.record(
      packets,
      s[slotStat(slot, S.SLOT_OCTETS_SENT)]!,
      s[slotStat(slot, S.SLOT_LAST_TIMESTAMP)]!,
      s[slotStat(slot, S.SLOT_LAST_SENT_AT)]!,
    );
  }

  /** Adds what the leg forwarded and dropped since the last call to the relay-wide totals. */
  harvest(totals: ForwardTotals, drops: MediaDrops): void {
    const s = this.#stats;
    const packetsOut = s[S.packetsOut]!;
    const bytesOut = s[S.bytesOut]!;
    totals.packetsForwarded += packetsOut - this.#packetsOut;
    totals.bytesForwarded += bytesOut - this.#bytesOut;
    this.#packetsOut = packetsOut;
    this.#bytesOut = bytesOut;
    for (let i = 0; i < DROPS.length; i++) {
      const [index, reason] = DROPS[i]!;
      const n = s[index]!;
      drops[reason] += n - this.#drops[i]!;
      this.#drops[i] = n;
    }
  }
}
