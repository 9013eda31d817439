import os from "node:os";
import { ParleyError } from "@parley/protocol";
import { AUDIO_LEVEL_URI, declaresSsrc, extensionId, loadNativePlane, mediaSectionCount } from "@parley/rtc";
import type { Logger } from "../logging/logger.js";
import type { DataPlane } from "./data-plane.js";
import { type MediaConfig, mediaConfigProblem } from "./media-config.js";
import { type MediaDrops, noMediaDrops } from "./media-drops.js";
import { type ForwardTotals, type LegPlaneChoice, MediaLeg } from "./media-leg.js";
import { NativeMedia } from "./native-media.js";
import { offerProblem } from "./offer-policy.js";
import {
  answerOffer,
  createPeerConnection,
  DEFAULT_OPUS_SETTINGS,
  type OpusSettings,
  portRangesToTry,
} from "./relay-peer-connection.js";
import { ReportSchedule } from "./report-schedule.js";

export type { MediaConfig } from "./media-config.js";
export { MEDIA_DROP_REASONS, type MediaDropReason, type MediaDrops } from "./media-drops.js";
export type { OpusSettings } from "./relay-peer-connection.js";

export interface MediaRelayOptions {
  /** A leg that has not connected this long after it was created fails and closes. Default 20 s. */
  connectTimeoutMs?: number;
  /**
   * The data plane connected legs' RTP runs on (see data-plane.ts). Unset: "native" where the
   * addon loads, else "js", the reason logged once as a warning. Set to "native" and the addon
   * does not load: the same fallback, logged once as an error (the operator asked for it).
   */
  dataPlane?: DataPlane;
  /** Media threads of the native plane (default: os.availableParallelism()). */
  mediaThreads?: number;
  /** Batch the native plane's system calls through io_uring where the kernel allows (default true). */
  mediaIoUring?: boolean;
  /** The addon file to load instead of the one the build makes (a test of the fallback names a missing one). */
  nativePlaneFile?: string | undefined;
  /** @deprecated `dataPlane: "werift"`. False keeps every leg on werift's RTP stack. */
  fastDataPlane?: boolean;
  /** The Opus in-band FEC and DTX the answers ask clients for (default: both on). */
  opus?: OpusSettings;
}

/** Per-leg choices of `createLeg`. */
export interface CreateLegOptions {
  /**
   * The leg's placement group, e.g. its call: every leg of a group runs on the same media thread
   * of the native plane (a new group goes to the least loaded thread). None: placed by load alone.
   */
  group?: string;
  /** This leg's data plane instead of the relay's (mixing planes in one call; tests compare them). */
  dataPlane?: DataPlane;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 20_000;

/**
 * The server's media relay (an SFU for audio): one WebRTC leg per client device, each receiving
 * that client's Opus audio and forwarding the RTP packets to the slots of the legs it is told to
 * (no mixing, no transcoding). It knows nothing of users or calls; the caller routes legs with
 * `route` / `forwardTo`.
 */
export class MediaRelay {
  readonly #config: MediaConfig;
  readonly #logger: Logger;
  readonly #connectTimeoutMs: number;
  /** The plane new legs get (after any fallback) and whether the operator named it. */
  readonly #dataPlane: DataPlane;
  readonly #dataPlaneNamed: boolean;
  readonly #mediaThreads: number;
  readonly #mediaIoUring: boolean;
  readonly #nativePlaneFile: string | undefined;
  /** The native plane, once a leg needs it; a string: why it cannot be loaded (logged once). */
  #native: NativeMedia | string | null = null;
  readonly #opus: OpusSettings;
  readonly #legs = new Set<MediaLeg>();
  readonly #totals: ForwardTotals = { packetsForwarded: 0, bytesForwarded: 0 };
  /** One timer for every leg's RTCP report checks. */
  readonly #reports = new ReportSchedule();
  readonly #drops: MediaDrops = noMediaDrops();
  #closed = false;

  constructor(config: MediaConfig, logger: Logger, options: MediaRelayOptions = {}) {
    const problem = mediaConfigProblem(config);
    if (problem) throw new Error(problem);
    this.#config = { ip: config.ip, portMin: config.portMin, portMax: config.portMax };
    this.#logger = logger;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.#dataPlaneNamed = options.dataPlane !== undefined;
    this.#mediaThreads = options.mediaThreads ?? os.availableParallelism();
    this.#nativePlaneFile = options.nativePlaneFile;
    this.#mediaIoUring = options.mediaIoUring ?? true;
    if (!(Number.isInteger(this.#mediaThreads) && this.#mediaThreads >= 1)) {
      throw new Error(`media threads must be a whole number of at least 1 (got ${options.mediaThreads})`);
    }
    this.#opus = { ...(options.opus ?? DEFAULT_OPUS_SETTINGS) };
    const asked = options.dataPlane ?? (options.fastDataPlane === false ? "werift" : "native");
    // The native plane is loaded now, so a server that cannot have it says so at start.
    this.#dataPlane = asked === "native" && !this.#nativeMedia() ? "js" : asked;
  }

  /** The data plane new legs run on once connected (after the fallback from native, if any). */
  get dataPlane(): DataPlane {
    return this.#dataPlane;
  }

  /** Live native legs on each media thread (empty until the native plane is first used). */
  mediaThreadLoad(): readonly number[] {
    return this.#native instanceof NativeMedia ? this.#native.load : [];
  }

  /**
   * The relay's native plane (loaded on first use), or null where it cannot be loaded: the reason
   * is logged once, as an error if the operator named the native plane, else as a warning.
   */
  #nativeMedia(): NativeMedia | null {
    if (this.#native === null) {
      const module = loadNativePlane(this.#nativePlaneFile);
      if (typeof module === "string") {
        this.#native = module;
        const level = this.#dataPlaneNamed ? "error" : "warn";
        this.#logger[level]({ reason: module }, "native media data plane unavailable: relaying on the JS fast plane");
      } else {
        this.#native = new NativeMedia(module, this.#mediaThreads, this.#mediaIoUring, this.#logger);
      }
    }
    return typeof this.#native === "string" ? null : this.#native;
  }

  /**
   * Creates a leg from a client's SDP offer (1 to 8 bundled audio m-lines with Opus: the first is
   * the client's microphone, each one a slot the relay can send a stream on); resolves with the leg
   * and the SDP answer (sendrecv, the offer's Opus payload type, every ICE candidate already in
   * it: config.ip only, UDP ports within [portMin, portMax]). The leg is live, and counted, from
   * the call on; it closes itself if setting up fails. `id` labels the leg in logs; it need not
   * be unique (a device's replacement leg may be created before its old one is closed).
   * Rejects with a ParleyError: BAD_PARAMS for an unusable offer, MEDIA_FAILED when the relay
   * cannot set the leg up (e.g. no free port).
   */
  async createLeg(
    id: string,
    offerSdp: string,
    options: CreateLegOptions = {},
  ): Promise<{ leg: MediaLeg; answerSdp: string }> {
    if (this.#closed) throw new ParleyError("MEDIA_FAILED", "The media relay is closed.");
    const problem = offerProblem(offerSdp);
    if (problem) throw new ParleyError("BAD_PARAMS", `Unusable SDP offer: ${problem}.`);

    if (!declaresSsrc(offerSdp)) {
      this.#logger.warn({ leg: id }, "the offer declares no a=ssrc: audio from this client cannot be routed");
    }
    const asked = options.dataPlane ?? this.#dataPlane;
    const native = asked === "native" ? this.#nativeMedia() : null;
    const plane: LegPlaneChoice = {
      kind: asked === "native" && !native ? "js" : asked,
      native,
      group: options.group,
      reports: this.#reports,
    };
    for (const portRange of portRangesToTry(this.#config)) {
      const created = await this.#attempt(id, offerSdp, portRange, plane);
      if (created) return created;
    }
    const { ip, portMin, portMax } = this.#config;
    this.#logger.warn({ leg: id, ip, portMin, portMax }, "no free UDP port for a media leg");
    throw new ParleyError("MEDIA_FAILED", `No free UDP port in ${portMin}-${portMax} on ${ip} for the media relay.`);
  }

  /** One try at a leg with ports from `portRange`; null if none of them was free. */
  async #attempt(
    id: string,
    offerSdp: string,
    portRange: [number, number],
    plane: LegPlaneChoice,
  ): Promise<{ leg: MediaLeg; answerSdp: string } | null> {
    if (this.#closed) throw new ParleyError("MEDIA_FAILED", "The media relay is closed.");
    let leg: MediaLeg | undefined;
    try {
      const { pc, senders } = createPeerConnection(this.#config, portRange, mediaSectionCount(offerSdp));
      const created = new MediaLeg(
        id,
        pc,
        senders,
        this.#totals,
        this.#drops,
        this.#logger,
        this.#connectTimeoutMs,
        plane,
      );
      leg = created;
      this.#legs.add(created);
      created.on("closed", () => this.#legs.delete(created));
      const answerSdp = await answerOffer(pc, offerSdp, this.#config, this.#opus);
      if (created.state === "closed") {
        throw new ParleyError("MEDIA_FAILED", "The media leg was closed while being set up.");
      }
      if (answerSdp === null) {
        created.close();
        return null;
      }
      if (!created.guardSocket()) throw new ParleyError("MEDIA_FAILED", "The media leg's socket cannot be guarded.");
      created.setAudioLevelExtension(extensionId(answerSdp, AUDIO_LEVEL_URI));
      return { leg: created, answerSdp };
    } catch (error) {
      leg?.close();
      this.#logger.warn({ leg: id, err: error }, "could not set up a media leg");
      throw error instanceof ParleyError ? error : new ParleyError("MEDIA_FAILED", undefined, { cause: error });
    }
  }

  /** Live legs, and the packets and RTP payload bytes forwarded since the relay started. */
  stats(): { legs: number; packetsForwarded: number; bytesForwarded: number } {
    if (this.#native instanceof NativeMedia) this.#native.harvest();
    return {
      legs: this.#legs.size,
      packetsForwarded: this.#totals.packetsForwarded,
      bytesForwarded: this.#totals.bytesForwarded,
    };
  }

  /**
   * Datagrams the legs dropped since the relay started, by reason (replayed or too old SRTP, RTP or
   * RTCP from outside the selected ICE pair, failed authentication, undeclared SSRCs, malformed).
   */
  drops(): Readonly<MediaDrops> {
    if (this.#native instanceof NativeMedia) this.#native.harvest();
    return { ...this.#drops };
  }

  /** Closes every leg; createLeg is refused from then on. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const leg of [...this.#legs]) leg.close();
    this.#legs.clear();
    if (this.#native instanceof NativeMedia) this.#native.close();
  }
}
