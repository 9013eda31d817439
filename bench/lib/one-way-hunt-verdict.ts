import { type HuntLeg, heardOther, heardTone } from "./one-way-hunt-leg.js";

/**
 * Whether an answered call carried audio both ways, from what each party's leg received per 1 s
 * window. A window is judged when it lies wholly in the answered part of the call, from one second
 * after the answer (the next packet, the signaling round trip, the relay linking the legs) to the
 * hang-up, and away from any period someone held the call (from 0.3 s before the hold to 1 s after
 * the resume). In a judged window a party should hear the other party's tone.
 */

const AFTER_ANSWER_MS = 1000;
const BEFORE_END_MS = 300;
const BEFORE_HOLD_MS = 300;
const AFTER_RESUME_MS = 1000;

/** A period the call was on hold (epoch ms; `to` is the resume, or the end). */
export interface Interval {
  from: number;
  to: number;
}

/** What one party heard from the other. */
export interface DirectionReport {
  /** "A->B": A's tone as B heard it. */
  direction: string;
  judged: number;
  heard: number;
  /** Windows with audio that was not the other party's tone. */
  other: number;
  /** Judged windows without the tone, in seconds after the answer, with the packets received in each. */
  missing: { second: number; packets: number; otherHz?: number; whose?: string }[];
  /** Missing windows before the first one with the tone (audio that started late). */
  leadingMissing: number;
  /** The hearing party's leg: connected and first packet, in ms after the answer (negative: before it). */
  legConnectedMs: number | null;
  firstAudioMs: number | null;
  authFailures: number;
  failure?: string;
}

export type Verdict = "ok" | "late-start" | "with-gaps" | "crossed" | "one-way" | "silent" | "unjudged";

/**
 * The 1 s windows (epoch seconds) in which audio must flow, and how many more were left out because
 * the bench process itself stalled in them (`stalls`: it read their packets late, see ToneClock).
 */
export function judgedWindows(
  answeredAt: number,
  endedAt: number,
  held: Interval[],
  stalls: Interval[] = [],
): { windows: number[]; stalled: number } {
  const out: number[] = [];
  let stalled = 0;
  for (
    let second = Math.ceil((answeredAt + AFTER_ANSWER_MS) / 1000);
    (second + 1) * 1000 <= endedAt - BEFORE_END_MS;
    second++
  ) {
    const from = second * 1000;
    const to = from + 1000;
    if (held.some((h) => from < h.to + AFTER_RESUME_MS && to > h.from - BEFORE_HOLD_MS)) continue;
    if (stalls.some((s) => from <= s.to + 50 && to > s.from)) {
      stalled++;
      continue;
    }
    out.push(second);
  }
  return { windows: out, stalled };
}

/** What `leg` (the hearing party's) received of the other party's tone in the judged windows. */
export function judgeDirection(
  direction: string,
  leg: HuntLeg | undefined,
  answeredAt: number,
  windows: number[],
): DirectionReport {
  const report: DirectionReport = {
    direction,
    judged: windows.length,
    heard: 0,
    other: 0,
    missing: [],
    leadingMissing: 0,
    legConnectedMs: leg?.connectedAt !== undefined ? leg.connectedAt - answeredAt : null,
    firstAudioMs: leg?.firstPacketAt !== undefined ? leg.firstPacketAt - answeredAt : null,
    authFailures: leg?.authFailures ?? 0,
  };
  if (!leg) report.failure = "no media leg";
  else if (leg.failure) report.failure = leg.failure;
  for (const second of windows) {
    const window = leg?.windows.get(second);
    if (heardTone(window)) {
      report.heard++;
      continue;
    }
    if (heardOther(window)) report.other++;
    if (report.heard === 0) report.leadingMissing++;
    report.missing.push({
      second: Math.round(second * 1000 - answeredAt) / 1000,
      packets: window?.packets ?? 0,
      ...(window?.otherHz !== undefined ? { otherHz: window.otherHz } : {}),
    });
  }
  return report;
}

/** The call's verdict from both directions. */
export function callVerdict(ab: DirectionReport, ba: DirectionReport): Verdict {
  if (ab.judged === 0 || ba.judged === 0) return "unjudged";
  if (ab.heard === 0 && ba.heard === 0) return "silent";
  if (ab.heard === 0 || ba.heard === 0) return "one-way";
  if (ab.other > 0 || ba.other > 0) return "crossed";
  if (ab.missing.length === 0 && ba.missing.length === 0) return "ok";
  return ab.missing.length === ab.leadingMissing && ba.missing.length === ba.leadingMissing
    ? "late-start"
    : "with-gaps";
}
