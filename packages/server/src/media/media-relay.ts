import { ParleyError } from "@parley/protocol";
import { AUDIO_LEVEL_URI, declaresSsrc, extensionId, mediaSectionCount } from "@parley/rtc";
import type { Logger } from "../logging/logger.js";
import { type MediaConfig, mediaConfigProblem } from "./media-config.js";
import { type MediaDrops, noMediaDrops } from "./media-drops.js";
import { type ForwardTotals, MediaLeg } from "./media-leg.js";
import { offerProblem } from "./offer-policy.js";
import {
  answerOffer,
  createPeerConnection,
  DEFAULT_OPUS_SETTINGS,
  type OpusSettings,
  portRangesToTry,
} from "./relay-peer-connection.js";

export type { MediaConfig } from "./media-config.js";
export { MEDIA_DROP_REASONS, type MediaDropReason, type MediaDrops } from "./media-drops.js";
export type { OpusSettings } from "./relay-peer-connection.js";

export interface MediaRelayOptions {
  /** A leg that has not connected this long after it was created fails and closes. Default 20 s. */
  connectTimeoutMs?: number;
  /**
   * Relay RTP through the fast data plane once a leg is connected (default true); false keeps every
   * leg on werift's RTP stack (the slower path, kept as the fallback; benchmarks compare the two).
   */
  fastDataPlane?: boolean;
  /** The Opus in-band FEC and DTX the answers ask clients for (default: both on). */
  opus?: OpusSettings;
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
  readonly #fastDataPlane: boolean;
  readonly #opus: OpusSettings;
  readonly #legs = new Set<MediaLeg>();
  readonly #totals: ForwardTotals = { packetsForwarded: 0, bytesForwarded: 0 };
  readonly #drops: MediaDrops = noMediaDrops();
  #closed = false;

  constructor(config: MediaConfig, logger: Logger, options: MediaRelayOptions = {}) {
    const problem = mediaConfigProblem(config);
    if (problem) throw new Error(problem);
    this.#config = { ip: config.ip, portMin: config.portMin, portMax: config.portMax };
    this.#logger = logger;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.#fastDataPlane = options.fastDataPlane ?? true;
    this.#opus = { ...(options.opus ?? DEFAULT_OPUS_SETTINGS) };
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
  async createLeg(id: string, offerSdp: string): Promise<{ leg: MediaLeg; answerSdp: string }> {
    if (this.#closed) throw new ParleyError("MEDIA_FAILED", "The media relay is closed.");
    const problem = offerProblem(offerSdp);
    if (problem) throw new ParleyError("BAD_PARAMS", `Unusable SDP offer: ${problem}.`);

    if (!declaresSsrc(offerSdp)) {
      this.#logger.warn({ leg: id }, "the offer declares no a=ssrc: audio from this client cannot be routed");
    }
    for (const portRange of portRangesToTry(this.#config)) {
      const created = await this.#attempt(id, offerSdp, portRange);
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
        this.#fastDataPlane,
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
    return { ...this.#drops };
  }

  /** Closes every leg; createLeg is refused from then on. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const leg of [...this.#legs]) leg.close();
    this.#legs.clear();
  }
}
