/**
 * Call quality from `RTCPeerConnection.getStats()`, sampled every 2 s: round-trip time (the
 * selected ICE candidate pair, else the RTCP remote-inbound report), packet loss over the last
 * interval and jitter of the received audio; and whether the media goes through a TURN relay
 * (the selected pair's local candidate is a relayed one), which explains a longer round trip.
 */

export const QUALITY_LEVELS = ["good", "fair", "poor"] as const;
export type QualityLevel = (typeof QUALITY_LEVELS)[number];

export interface CallQuality {
  /** Milliseconds, or undefined when not measured yet. */
  rttMs: number | undefined;
  /** Percent of packets lost in the last interval. */
  lossPercent: number | undefined;
  jitterMs: number | undefined;
  /** Undefined until there is something to judge. */
  level: QualityLevel | undefined;
  /**
   * How this device reaches the relay: "direct" (its own address), or "turn" through a TURN
   * server (its network blocks UDP), with the protocol to the TURN server (udp, tcp or tls).
   */
  path: { kind: "direct" } | { kind: "turn"; protocol: string } | undefined;
}

export const NO_QUALITY: CallQuality = {
  rttMs: undefined,
  lossPercent: undefined,
  jitterMs: undefined,
  level: undefined,
  path: undefined,
};

export function qualityLevel(rttMs?: number, lossPercent?: number, jitterMs?: number): QualityLevel | undefined {
  if (rttMs === undefined && lossPercent === undefined && jitterMs === undefined) return undefined;
  if ((rttMs ?? 0) > 400 || (lossPercent ?? 0) > 5 || (jitterMs ?? 0) > 50) return "poor";
  if ((rttMs ?? 0) > 200 || (lossPercent ?? 0) > 1.5 || (jitterMs ?? 0) > 25) return "fair";
  return "good";
}

interface Counters {
  lost: number;
  received: number;
}

type StatsRecord = Record<string, unknown> & { type: string; id: string };

function num(value: unknown): number | undefined {
  return typeof value === "number" && Number.isFinite(value) ? value : undefined;
}

export class CallStatsMonitor {
  readonly #pc: RTCPeerConnection;
  readonly #onSample: (quality: CallQuality) => void;
  readonly #timer: ReturnType<typeof setInterval>;
  #previous: Counters | undefined;
  #stopped = false;

  constructor(pc: RTCPeerConnection, onSample: (quality: CallQuality) => void, intervalMs = 2000) {
    this.#pc = pc;
    this.#onSample = onSample;
    this.#timer = setInterval(() => void this.#sample(), intervalMs);
    void this.#sample();
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
  }

  async #sample(): Promise<void> {
    if (this.#stopped || this.#pc.connectionState === "closed") return;
    let report: RTCStatsReport;
    try {
      report = await this.#pc.getStats();
    } catch {
      return;
    }
    if (this.#stopped) return;
    const records: StatsRecord[] = [];
    report.forEach((value: StatsRecord) => {
      records.push(value);
    });

    let rtt: number | undefined;
    const transport = records.find((r) => r.type === "transport" && typeof r.selectedCandidatePairId === "string");
    const pair =
      records.find((r) => r.type === "candidate-pair" && r.id === transport?.selectedCandidatePairId) ??
      records.find((r) => r.type === "candidate-pair" && r.nominated === true && r.state === "succeeded");
    rtt = num(pair?.currentRoundTripTime);
    const local = records.find((r) => r.type === "local-candidate" && r.id === pair?.localCandidateId);
    const path: CallQuality["path"] = !local
      ? undefined
      : local.candidateType === "relay"
        ? { kind: "turn", protocol: typeof local.relayProtocol === "string" ? local.relayProtocol : "udp" }
        : { kind: "direct" };
    const remoteInbound = records.find((r) => r.type === "remote-inbound-rtp" && r.kind === "audio");
    rtt ??= num(remoteInbound?.roundTripTime);

    const inbound = records.find((r) => r.type === "inbound-rtp" && r.kind === "audio");
    let loss: number | undefined;
    let jitter: number | undefined;
    if (inbound) {
      jitter = num(inbound.jitter);
      const lost = Math.max(0, num(inbound.packetsLost) ?? 0);
      const received = num(inbound.packetsReceived) ?? 0;
      const previous = this.#previous;
      this.#previous = { lost, received };
      const dLost = previous ? lost - previous.lost : lost;
      const dReceived = previous ? received - previous.received : received;
      if (dLost + dReceived > 0) loss = (Math.max(0, dLost) / (Math.max(0, dLost) + dReceived)) * 100;
      else if (previous) loss = 100; // nothing arrived during the whole interval
    }
    const rttMs = rtt === undefined ? undefined : rtt * 1000;
    const jitterMs = jitter === undefined ? undefined : jitter * 1000;
    this.#onSample({ rttMs, lossPercent: loss, jitterMs, level: qualityLevel(rttMs, loss, jitterMs), path });
  }
}
