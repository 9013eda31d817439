import { assignSlots, type MediaLeg } from "../media/index.js";
import type { Call } from "./call.js";

/**
 * SFU routing: in an active call, each talking participant who has not put it on hold hears
 * every other such participant, one per receive slot; with more speakers than slots the
 * loudest are heard. Everyone else's slots are silent. Run again on every change that can
 * alter who hears whom (answer, hold, resume, a leg in or out, a participant leaving, speaking).
 */
export function routeCall(call: Call): void {
  const talkers: MediaLeg[] = [];
  if (call.state === "active") {
    for (const member of call.talking()) {
      const leg = member.device && !call.held.has(member.userId) ? call.legs.get(member.device.id) : undefined;
      if (leg) talkers.push(leg);
    }
  }
  for (const leg of call.legs.values()) {
    if (!talkers.includes(leg)) {
      leg.clearRoutes();
      continue;
    }
    const sources = assignSlots(
      leg.slotSources,
      talkers.filter((other) => other !== leg),
      (other) => other.loudness,
    );
    for (const [slot, source] of sources.entries()) leg.route(slot, source);
  }
}
