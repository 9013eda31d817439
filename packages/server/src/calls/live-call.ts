import type { ParticipantState } from "@parley/protocol";
import type { MediaLegQuality } from "../media/index.js";
import type { Call } from "./call.js";

/** A live call as the operator console and the metrics see it. */
export interface LiveCall {
  id: string;
  state: Call["state"];
  conference: boolean;
  participants: { username: string; state: ParticipantState; held: boolean; muted: boolean }[];
  createdAt: Date;
  answeredAt: Date | undefined;
  legs: {
    device: number;
    /** The user whose device the leg carries (a device of another cluster node included). */
    username: string | undefined;
    state: string;
    packetsIn: number;
    packetsOut: number;
    bytesIn: number;
    bytesOut: number;
    /** RTCP-derived quality, read on demand (operator console). */
    quality(): Promise<MediaLegQuality>;
  }[];
  /** Someone put the answered call on hold. */
  held: boolean;
}

/**
 * How the operator and the metrics name a live call's state: ringing until answered, then a
 * conference (more than two invited), or a 1:1 call that someone holds, or active.
 */
export function liveCallState(call: LiveCall): "ringing" | "active" | "held" | "conference" {
  if (call.state === "ringing") return "ringing";
  if (call.conference) return "conference";
  return call.held ? "held" : "active";
}

/** The live view of `call`, its legs' counters read now. */
export function liveCall(call: Call): LiveCall {
  return {
    id: call.id,
    state: call.state,
    conference: call.conference,
    participants: [...call.members.values()].map((m) => ({
      username: m.party.username,
      state: m.state,
      held: call.held.has(m.userId),
      muted: call.muted.has(m.userId),
    })),
    createdAt: call.createdAt,
    answeredAt: call.answeredAt,
    legs: [...call.legs].map(([device, leg]) => ({
      device,
      username: [...call.members.values()].find((m) => m.device?.id === device)?.party.username,
      state: leg.state,
      packetsIn: leg.counters.packetsIn,
      packetsOut: leg.counters.packetsOut,
      bytesIn: leg.counters.bytesIn,
      bytesOut: leg.counters.bytesOut,
      quality: () => leg.quality(),
    })),
    held: call.held.size > 0,
  };
}
