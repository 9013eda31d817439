/**
 * What tests/e2e/loss-robustness.test.ts reads from the browsers: their inbound audio's WebRTC stats
 * (concealment, loss, jitter buffer, playout), their SDPs, and the split of a measurement into
 * one-second windows, with the windows where a receiver stalled (CPU, not the network) marked.
 */
import type { Page } from "playwright-core";

/** Keeps every RTCPeerConnection the page makes, so the test can read their stats and SDPs. */
export const KEEP_PEER_CONNECTIONS = `(() => {
  const Original = window.RTCPeerConnection;
  const kept = [];
  window.__parleyPeerConnections = kept;
  window.RTCPeerConnection = class extends Original {
    constructor(...args) { super(...args); kept.push(this); }
  };
})();`;

/** The little of the browser's RTCPeerConnection the test reads (the tests are type-checked without the DOM). */
interface PagePeerConnection {
  connectionState: string;
  localDescription: { sdp: string } | null;
  remoteDescription: { sdp: string } | null;
  getStats(): Promise<{ forEach(each: (s: Record<string, unknown>) => void): void }>;
}
type PageGlobals = { __parleyPeerConnections: PagePeerConnection[] };

/** One reading of a page's audio stats (cumulative counters, summed over its live peer connections). */
export interface Snapshot {
  /** The inbound stats' timestamp, ms. */
  at: number;
  /** Samples (48 kHz) played out, and how many of them NetEq had to conceal. */
  total: number;
  concealed: number;
  /** Packets the receiver found missing (FEC-recovered ones included). */
  lost: number;
  /** jitterBufferDelay (s, summed over emitted samples) and jitterBufferEmittedCount. */
  bufferDelay: number;
  buffered: number;
  /** The RTP interarrival jitter (s) of the inbound audio, the largest over its streams. */
  jitter: number;
  /** What this page sends: payload bytes and packets, and the loss its receiver reports give. */
  bytesSent: number;
  packetsSent: number;
  fractionLost: number;
}

/** Reads the page's audio stats. */
export function snapshot(page: Page): Promise<Snapshot> {
  return page.evaluate(async () => {
    const pcs = (globalThis as unknown as PageGlobals).__parleyPeerConnections;
    const c = {
      at: 0,
      concealed: 0,
      total: 0,
      lost: 0,
      bufferDelay: 0,
      buffered: 0,
      jitter: 0,
      bytesSent: 0,
      packetsSent: 0,
      fractionLost: 0,
    };
    for (const pc of pcs) {
      if (pc.connectionState === "closed") continue;
      const report = await pc.getStats();
      report.forEach((s) => {
        if (s.kind !== "audio") return;
        if (s.type === "inbound-rtp") {
          c.at = Math.max(c.at, Number(s.timestamp ?? 0));
          c.concealed += Number(s.concealedSamples ?? 0);
          c.total += Number(s.totalSamplesReceived ?? 0);
          c.lost += Number(s.packetsLost ?? 0);
          c.bufferDelay += Number(s.jitterBufferDelay ?? 0);
          c.jitter = Math.max(c.jitter, Number(s.jitter ?? 0));
          c.buffered += Number(s.jitterBufferEmittedCount ?? 0);
        } else if (s.type === "outbound-rtp") {
          c.bytesSent += Number(s.bytesSent ?? 0);
          c.packetsSent += Number(s.packetsSent ?? 0);
        } else if (s.type === "remote-inbound-rtp") {
          c.fractionLost = Math.max(c.fractionLost, Number(s.fractionLost ?? 0));
        }
      });
    }
    return c;
  });
}

/** The page's last live peer connection's local and remote SDP. */
export function sdps(page: Page): Promise<{ local: string; remote: string }> {
  return page.evaluate(() => {
    const pcs = (globalThis as unknown as PageGlobals).__parleyPeerConnections;
    const pc = pcs.filter((p) => p.connectionState !== "closed").at(-1);
    return { local: pc?.localDescription?.sdp ?? "", remote: pc?.remoteDescription?.sdp ?? "" };
  });
}

/** The Opus fmtp of an SDP. */
export function opusFmtp(sdp: string): string {
  const pt = /^a=rtpmap:(\d+) opus\/48000\/2/im.exec(sdp)?.[1];
  return new RegExp(`^a=fmtp:${pt} (.*)$`, "m").exec(sdp)?.[1]?.trim() ?? "(none)";
}

/** What one receiver did between two snapshots. */
export interface Window {
  ms: number;
  total: number;
  concealed: number;
  lost: number;
  /** The jitter buffer's average delay over the samples it emitted in the window, ms. */
  bufferMs: number;
  /** The RTP interarrival jitter the receiver computed at the window's end, ms. */
  jitterMs: number;
}

export function windowBetween(a: Snapshot, b: Snapshot): Window {
  return {
    ms: b.at - a.at,
    total: b.total - a.total,
    concealed: b.concealed - a.concealed,
    lost: b.lost - a.lost,
    bufferMs: ((b.bufferDelay - a.bufferDelay) / Math.max(1, b.buffered - a.buffered)) * 1000,
    jitterMs: b.jitter * 1000,
  };
}

/** The windows between consecutive snapshots. */
export function windowsOf(snapshots: Snapshot[]): Window[] {
  const windows: Window[] = [];
  let previous: Snapshot | undefined;
  for (const s of snapshots) {
    if (previous) windows.push(windowBetween(previous, s));
    previous = s;
  }
  return windows;
}

/** Playout must keep up with the clock within this share in a second, or the receiver stalled. */
export const PLAYOUT_KEPT_UP = 0.9;
/**
 * A jitter buffer whose average delay grew by more than this (ms) from one second to the next had
 * packets arrive late and then in a burst: NetEq grows its target delay for late packets, not for
 * lost ones.
 */
export const BUFFER_GROWTH_MS = 60;
/** RTP interarrival jitter (RFC 3550) above this (ms) at the end of a second: packets arrived irregularly. */
export const ARRIVAL_JITTER_MS = 10;

/** Why a receiver's second is a stall, or undefined when it is not. */
export function stallIn(window: Window, previous: Window | undefined): string | undefined {
  const expected = (48_000 * window.ms) / 1000;
  if (window.total < PLAYOUT_KEPT_UP * expected) return "playout fell behind";
  if (previous && window.bufferMs > previous.bufferMs + BUFFER_GROWTH_MS) {
    return `jitter buffer grew ${previous.bufferMs.toFixed(0)} → ${window.bufferMs.toFixed(0)} ms`;
  }
  if (window.jitterMs > ARRIVAL_JITTER_MS) return `arrival jitter ${window.jitterMs.toFixed(0)} ms`;
  return undefined;
}

/** Sums windows: concealed share of the audio, concealed 20 ms frames per lost packet. */
export function summed(windows: Window[]): { share: number; perLoss: number; lost: number; bufferMs: number } {
  const concealed = windows.reduce((n, w) => n + w.concealed, 0);
  const total = windows.reduce((n, w) => n + w.total, 0);
  const lost = windows.reduce((n, w) => n + w.lost, 0);
  const bufferMs = windows.reduce((n, w) => n + w.bufferMs * w.total, 0) / Math.max(1, total);
  return { share: concealed / Math.max(1, total), perLoss: concealed / 960 / Math.max(1, lost), lost, bufferMs };
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}
