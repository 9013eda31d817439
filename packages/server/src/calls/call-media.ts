import { ParleyError } from "@parley/protocol";
import type { MediaLeg, MediaRelay } from "../media/index.js";
import { offerProblem } from "../media/offer-policy.js";
import type { Device } from "../presence/presence-service.js";
import type { Call, Member } from "./call.js";
import { routeCall } from "./call-routing.js";

/** A talking leg that sent audio and then nothing for this long is told to recover (`call.mediaRestart`). */
const SILENT_LEG_MS = 4000;
/** A leg taken back by a reconnected device that has heard nothing from it for this long is renewed. */
const RESUMED_LEG_SILENT_MS = 2000;
/** How often a silent leg is told again while it stays silent. */
const SILENT_HINT_EVERY_MS = 5000;

/**
 * The media legs of calls: sets up a device's leg from its SDP offer (replacing its earlier one),
 * and recovers from a leg that fails or goes silent after it worked (the device is told to set up
 * a new one, `call.mediaRestart`). Who hears whom is `routeCall`; what a lost leg means for the
 * call (the member leaves) is the caller's `mediaFailed`.
 */
export class CallMedia {
  readonly #relay: MediaRelay;
  readonly #maxMediaLegs: number;
  readonly #callGraceMs: number;
  /** A member's media failed for good: they leave the call as media_failed. */
  readonly #mediaFailed: (call: Call, member: Member) => void;
  /** The loudest speakers changed (routing is done): the call's devices are told. */
  readonly #speakersChanged: (call: Call) => void;
  /** `callId:deviceId` of the legs being set up now: one at a time per device and call. */
  readonly #legsInSetup = new Set<string>();
  /** When each leg connected: only a leg that worked is worth recovering. */
  readonly #connectedAt = new WeakMap<MediaLeg, number>();
  /** When a silent leg's device was last told to recover. */
  readonly #hintedAt = new WeakMap<MediaLeg, number>();
  readonly #silenceSweep: NodeJS.Timeout;

  constructor(deps: {
    relay: MediaRelay;
    /** Media legs the relay may hold at once (below the number of ports in its range). */
    maxMediaLegs: number;
    /** How long a member whose working leg failed has to set up a new one (0: no time). */
    callGraceMs: number;
    /** The calls whose talking legs are watched for silence. */
    calls: () => Iterable<Call>;
    mediaFailed: (call: Call, member: Member) => void;
    speakersChanged: (call: Call) => void;
  }) {
    this.#relay = deps.relay;
    this.#maxMediaLegs = deps.maxMediaLegs;
    this.#callGraceMs = deps.callGraceMs;
    this.#mediaFailed = deps.mediaFailed;
    this.#speakersChanged = deps.speakersChanged;
    this.#silenceSweep = setInterval(() => this.#findSilentLegs(deps.calls()), 1000);
    this.#silenceSweep.unref();
  }

  /** Stops watching for silent legs (server shutdown). */
  close(): void {
    clearInterval(this.#silenceSweep);
  }

  /**
   * Media for this device's leg in `call` (the device talks or rings in it): SDP offer in, answer
   * out. One leg per device and call: a new offer replaces the device's earlier leg, which is
   * closed before the new one is created (so a device never holds two), and a second offer while
   * one is being set up is refused (MEDIA_FAILED). MEDIA_CAPACITY when the relay already holds
   * `maxMediaLegs` legs.
   */
  async setUp(call: Call, device: Device, sdp: string): Promise<string> {
    const key = `${call.id}:${device.id}`;
    if (this.#legsInSetup.has(key)) {
      throw new ParleyError("MEDIA_FAILED", "This device's media for the call is already being set up.");
    }
    // A bad offer changes nothing: the device keeps the leg it has.
    const problem = offerProblem(sdp);
    if (problem) throw new ParleyError("BAD_PARAMS", `Unusable SDP offer: ${problem}.`);
    if (call.legs.has(device.id)) {
      call.closeLeg(device.id);
      routeCall(call);
    }
    // The relay counts a leg from the moment it starts setting it up, so concurrent offers from
    // other devices are counted too.
    if (this.#relay.stats().legs >= this.#maxMediaLegs) {
      call.logger.warn({ device: device.id, legs: this.#maxMediaLegs }, "media relay at capacity");
      throw new ParleyError("MEDIA_CAPACITY");
    }
    let created: { leg: MediaLeg; answerSdp: string };
    this.#legsInSetup.add(key);
    try {
      // All legs of a call on one media thread (the relay's placement group).
      created = await this.#relay.createLeg(key, sdp, { group: call.id });
    } catch (error) {
      call.logger.warn({ err: error, device: device.id }, "media leg failed");
      if (error instanceof ParleyError) throw error;
      throw new ParleyError("MEDIA_FAILED", undefined, { cause: error });
    } finally {
      this.#legsInSetup.delete(key);
    }
    const { leg, answerSdp } = created;
    // The call may have ended, or this device stopped ringing, while the leg was set up.
    if (call.state === "ended" || !call.memberOf(device)) {
      leg.close();
      throw new ParleyError(call.state === "ended" ? "CALL_ENDED" : "NOT_IN_CALL");
    }
    call.putLeg(device.id, leg);
    if (call.talkerOf(device)?.newLegArrived()) call.logger.info({ device: device.id }, "media leg replaced");
    // The leg may change hands (the device reconnects: `reattach`), so its device is looked up each time.
    leg.on("stateChange", (state) => {
      if (state === "connected") this.#connectedAt.set(leg, Date.now());
      const owner = state === "failed" ? ownerOf(call, leg) : undefined;
      if (!owner) return;
      call.logger.warn({ device: owner.id }, "media leg failed");
      const member = call.talkerOf(owner);
      if (member && this.#connectedAt.has(leg) && this.#callGraceMs > 0) this.#awaitNewLeg(call, member, owner);
      else if (member) this.#mediaFailed(call, member);
      else call.closeLeg(owner.id);
    });
    leg.on("speaking", () => {
      if (!ownerOf(call, leg) || call.state !== "active") return;
      routeCall(call); // the loudest speakers take the receive slots
      this.#speakersChanged(call);
    });
    routeCall(call);
    return answerSdp;
  }

  /**
   * A reconnected device took back its call: `leg` (its leg, if it still has one) carries on. If
   * it failed, or hears nothing from the device (it came back from a new network), the device is
   * asked for a new one, after the resume's reply that hands the call back.
   */
  renewIfSilent(call: Call, device: Device, leg: MediaLeg | undefined): void {
    if (!leg || Date.now() - leg.counters.lastPacketAt > RESUMED_LEG_SILENT_MS) {
      setImmediate(() => device.push("call.mediaRestart", { callId: call.id }));
    }
  }

  /**
   * A leg that worked failed (the device's network changed, or its path broke): the device is told
   * to set up a new one (`call.mediaRestart`, again once it reconnects) and has the grace period to
   * do it; `call.media` swapping a new leg in stops the clock. Otherwise it leaves as media_failed.
   */
  #awaitNewLeg(call: Call, member: Member, device: Device): void {
    call.closeLeg(device.id);
    routeCall(call);
    const waiting = member.awaitNewLeg(this.#callGraceMs, () => {
      if (!member.present || !member.device || call.legs.has(member.device.id)) return;
      this.#mediaFailed(call, member);
    });
    if (!waiting) return;
    member.device?.push("call.mediaRestart", { callId: call.id });
  }

  /**
   * Talking legs that carried audio and then went silent (a network change the leg has not noticed
   * yet) are told to recover; the client sets up a new leg. Legs that never sent (no microphone)
   * are left alone.
   */
  #findSilentLegs(calls: Iterable<Call>): void {
    const now = Date.now();
    for (const call of calls) {
      if (call.state !== "active") continue;
      for (const member of call.talking()) {
        if (member.reconnecting || !member.device) continue;
        const leg = call.legs.get(member.device.id);
        if (leg?.state !== "connected") continue;
        const heard = leg.counters.lastPacketAt;
        if (heard === 0 || now - heard < SILENT_LEG_MS) continue;
        if (now - (this.#hintedAt.get(leg) ?? 0) < SILENT_HINT_EVERY_MS) continue;
        this.#hintedAt.set(leg, now);
        call.logger.info({ device: member.device.id, silentMs: now - heard }, "media leg silent: asking for a new one");
        member.device.push("call.mediaRestart", { callId: call.id });
      }
    }
  }
}

/** The device whose media leg `leg` is in `call`, if it still has one. */
export function ownerOf(call: Call, leg: MediaLeg): Device | undefined {
  for (const [deviceId, candidate] of call.legs) {
    if (candidate !== leg) continue;
    for (const member of call.members.values()) if (member.device?.id === deviceId) return member.device;
    for (const member of call.members.values()) for (const d of member.ringing) if (d.id === deviceId) return d;
  }
  return undefined;
}
