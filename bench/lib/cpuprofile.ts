import fs from "node:fs";

/** Summarises a V8 .cpuprofile (from `node --cpu-prof`): self and inclusive time per function and per area. */

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface FunctionCost {
  function: string;
  location: string;
  area: string;
  selfMs: number;
  selfPct: number;
  totalMs: number;
  totalPct: number;
}

export interface ProfileSummary {
  durationMs: number;
  /** Time spent running anything (not idle), in ms and as % of the profile's wall time. */
  busyMs: number;
  busyPct: number;
  /** Self time per area, % of busy time. */
  areas: { area: string; selfMs: number; selfPct: number }[];
  topSelf: FunctionCost[];
  /** Inclusive time of functions on the packet path, % of busy time. */
  hotPaths: FunctionCost[];
}

/**
 * werift's ESM build is one esbuild bundle (lib/index.mjs) with a `// ../rtp/src/rtp/rtp.ts`
 * comment where each source file starts; map a bundle line back to its source file.
 */
const bundleMarkers = new Map<string, { line: number; source: string }[]>();

function bundleSource(url: string, line: number): string | undefined {
  if (!url.endsWith("/werift/lib/index.mjs")) return undefined;
  let markers = bundleMarkers.get(url);
  if (!markers) {
    markers = [];
    try {
      const lines = fs.readFileSync(url.replace(/^file:\/\//, ""), "utf8").split("\n");
      lines.forEach((text, i) => {
        const match = /^\/\/ (\S+\.ts)$/.exec(text);
        if (match) markers!.push({ line: i, source: match[1]!.replace(/^\.\.\//, "") });
      });
    } catch {
      // bundle not readable: no mapping
    }
    bundleMarkers.set(url, markers);
  }
  let found: string | undefined;
  for (const marker of markers) {
    if (marker.line > line) break;
    found = marker.source;
  }
  return found;
}

/** The file a frame's code comes from: its URL, or for werift's bundle the original source file. */
function sourcePath(frame: CallFrame): string {
  const inBundle = bundleSource(frame.url, frame.lineNumber);
  return inBundle ? `/werift/lib/${inBundle.startsWith("src/") ? `webrtc/${inBundle}` : inBundle}` : frame.url;
}

/** Which part of the stack a script belongs to. */
export function areaOf(frame: CallFrame): string {
  const url = sourcePath(frame);
  const name = frame.functionName;
  if (!url) {
    if (name === "(garbage collector)") return "V8 garbage collector";
    if (name === "(idle)") return "idle";
    if (name === "(program)") return "V8/native (program)";
    return "native";
  }
  if (url.includes("/werift/lib/rtp/src/srtp")) return "werift SRTP";
  if (url.includes("/werift/lib/rtp/")) return "werift RTP/RTCP";
  if (url.includes("/werift/lib/ice/")) return "werift ICE/STUN";
  if (url.includes("/werift/lib/dtls/")) return "werift DTLS";
  if (url.includes("/werift/lib/common/")) return "werift common (UDP transport, events)";
  if (url.includes("/werift/lib/webrtc/")) return "werift WebRTC (transports, sender/receiver)";
  if (url.includes("/werift/")) return "werift other";
  if (url.includes("/packages/server/dist/media/") || url.includes("/packages/rtc/dist/")) {
    return "Parley media (fast data plane, MediaLeg)";
  }
  if (url.includes("/packages/server/")) return "Parley server (other)";
  if (url.includes("/node_modules/ws/")) return "ws (WebSocket)";
  if (url.includes("/node_modules/pino") || url.includes("/node_modules/sonic-boom")) return "pino (logging)";
  if (url.includes("/node_modules/better-sqlite3")) return "better-sqlite3";
  if (url.includes("/node_modules/")) return "other dependencies";
  if (url.startsWith("node:dgram") || url.includes("internal/dgram")) return "Node dgram (UDP)";
  if (url.startsWith("node:crypto") || url.includes("internal/crypto")) return "Node crypto";
  if (url.startsWith("node:")) return "Node core (other)";
  return "other";
}

function locationOf(frame: CallFrame): string {
  const inBundle = bundleSource(frame.url, frame.lineNumber);
  if (inBundle) return `werift ${inBundle} (index.mjs:${frame.lineNumber + 1})`;
  const url = frame.url.replace(/^file:\/\//, "");
  const short = url.includes("node_modules/")
    ? url.slice(url.lastIndexOf("node_modules/") + "node_modules/".length)
    : url.includes("/packages/")
      ? url.slice(url.indexOf("/packages/") + 1)
      : url;
  return short ? `${short}:${frame.lineNumber + 1}` : "";
}

/** Functions whose inclusive time is worth reporting (the per-packet path). */
const HOT_PATHS: { name: string; match: (f: CallFrame) => boolean }[] = [
  {
    name: "receive: UDP datagram (Node dgram onMessage, and everything it runs)",
    match: (f) => f.functionName === "onMessage" && f.url.includes("dgram"),
  },
  {
    name: "receive: werift ICE demux (StunProtocol.datagramReceived: STUN parse attempt on every datagram)",
    match: (f) => f.functionName === "datagramReceived",
  },
  {
    name: "receive: werift SRTP decrypt (SrtpSession.decrypt)",
    match: (f) => f.functionName === "decrypt" && sourcePath(f).includes("srtp/srtp"),
  },
  {
    name: "receive: werift RTP parse (RtpPacket.deSerialize)",
    match: (f) => f.functionName === "deSerialize" && sourcePath(f).includes("rtp/src/rtp/rtp"),
  },
  {
    name: "receive: werift RTP receiver (RTCRtpReceiver.handleRtpBySsrc: statistics, track)",
    match: (f) => f.functionName === "handleRtpBySsrc",
  },
  {
    name: "Parley MediaLeg: count and forward (#onRtp, includes the send path below)",
    match: (f) => f.functionName.includes("onRtp") && f.url.includes("media-leg"),
  },
  {
    name: "receive: Parley fast data plane (FastRtpPath.#receive: SRTP, decode, and the forwarding it runs)",
    match: (f) => f.functionName.includes("receive") && f.url.includes("media/fast-rtp"),
  },
  {
    name: "receive: SRTP authenticate and decrypt (SrtpReceiver.unprotect, node:crypto)",
    match: (f) => f.functionName === "unprotect" && f.url.includes("media/srtp"),
  },
  {
    name: "send: Parley fast data plane (FastRtpPath.send: consent check, encrypt, UDP send)",
    match: (f) => f.functionName === "send" && f.url.includes("media/fast-rtp"),
  },
  {
    name: "send: SRTP encrypt (SrtpSender.protect, node:crypto)",
    match: (f) => f.functionName === "protect" && f.url.includes("media/srtp"),
  },
  { name: "send: RtpPacket.clone (MediaLeg.#send)", match: (f) => f.functionName === "clone" },
  {
    name: "send: werift RTP sender (RTCRtpSender.sendRtp: header rewrite, stats, history)",
    match: (f) => f.functionName === "sendRtp" && sourcePath(f).includes("rtpSender"),
  },
  {
    name: "send: werift SRTP encrypt (SrtpSession.encrypt)",
    match: (f) => f.functionName === "encrypt" && sourcePath(f).includes("srtp/srtp"),
  },
  {
    name: "send: Node UDP send (Socket.send, then doSend with the sendmsg system call, after an address lookup tick)",
    match: (f) => (f.functionName === "Socket.send" || f.functionName === "doSend") && f.url.includes("dgram"),
  },
  {
    name: "werift RTCP (reports sent and received)",
    match: (f) =>
      f.functionName === "runRtcp" || f.functionName === "handleRtcpPacket" || f.functionName === "routeRtcp",
  },
  { name: "V8 garbage collector (on the main thread)", match: (f) => f.functionName === "(garbage collector)" },
];

/**
 * `range` keeps only the samples taken between `fromEndMs` and `toEndMs` before the profile ended
 * (the server is stopped right after the measurement window, so startup and call setup drop out).
 */
export function summarizeProfile(
  file: string,
  top = 25,
  range?: { fromEndMs: number; toEndMs: number },
): ProfileSummary {
  const profile = JSON.parse(fs.readFileSync(file, "utf8")) as Profile;
  const from = range ? profile.endTime - range.fromEndMs * 1000 : Number.NEGATIVE_INFINITY;
  const to = range ? profile.endTime - range.toEndMs * 1000 : Number.POSITIVE_INFINITY;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const keyOf = (f: CallFrame) => `${f.functionName || "(anonymous)"}|${f.url}|${f.lineNumber}|${f.columnNumber}`;
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  const hot = new Map<string, number>();
  const frames = new Map<string, CallFrame>();
  let idleUs = 0;
  let allUs = 0;
  let at = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    at += profile.timeDeltas[i] ?? 0;
    // A sample's weight is the time until the next one.
    const dt = profile.timeDeltas[i + 1] ?? 0;
    const node = byId.get(profile.samples[i]!);
    if (!node || at < from || at > to) continue;
    allUs += dt;
    if (node.callFrame.functionName === "(idle)") {
      idleUs += dt;
      continue;
    }
    const selfKey = keyOf(node.callFrame);
    frames.set(selfKey, node.callFrame);
    self.set(selfKey, (self.get(selfKey) ?? 0) + dt);
    const seen = new Set<string>();
    const hotSeen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const frame = byId.get(id)!.callFrame;
      const key = keyOf(frame);
      if (!seen.has(key)) {
        seen.add(key);
        frames.set(key, frame);
        total.set(key, (total.get(key) ?? 0) + dt);
      }
      for (const path of HOT_PATHS) {
        if (!hotSeen.has(path.name) && path.match(frame)) {
          hotSeen.add(path.name);
          hot.set(path.name, (hot.get(path.name) ?? 0) + dt);
        }
      }
    }
  }
  const busyUs = allUs - idleUs;
  const pct = (us: number) => Math.round((1000 * us) / Math.max(1, busyUs)) / 10;
  const ms = (us: number) => Math.round(us / 100) / 10;
  const areas = new Map<string, number>();
  for (const [key, us] of self) {
    const area = areaOf(frames.get(key)!);
    areas.set(area, (areas.get(area) ?? 0) + us);
  }
  const cost = (key: string): FunctionCost => {
    const frame = frames.get(key)!;
    return {
      function: frame.functionName || "(anonymous)",
      location: locationOf(frame),
      area: areaOf(frame),
      selfMs: ms(self.get(key) ?? 0),
      selfPct: pct(self.get(key) ?? 0),
      totalMs: ms(total.get(key) ?? 0),
      totalPct: pct(total.get(key) ?? 0),
    };
  };
  return {
    durationMs: ms(allUs),
    busyMs: ms(busyUs),
    busyPct: Math.round((1000 * busyUs) / Math.max(1, allUs)) / 10,
    areas: [...areas].sort((a, b) => b[1] - a[1]).map(([area, us]) => ({ area, selfMs: ms(us), selfPct: pct(us) })),
    topSelf: [...self]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([key]) => cost(key)),
    hotPaths: HOT_PATHS.filter((p) => hot.has(p.name)).map((p) => ({
      function: p.name,
      location: "",
      area: "",
      selfMs: 0,
      selfPct: 0,
      totalMs: ms(hot.get(p.name)!),
      totalPct: pct(hot.get(p.name)!),
    })),
  };
}
