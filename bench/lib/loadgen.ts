/**
 * Load generator process (one of several, pinned away from the server's core). It hosts client
 * legs (werift for ICE and DTLS, then RTP on the media plane: its native engine process, or
 * fast-leg.ts here; see media-plane.ts) and signaling clients, and is driven by the orchestrator
 * over IPC. Both ends of every call or stream live in the same generator, so a packet's delay is
 * its receive time minus the send time it carries, on one clock.
 */
import type { RTCPeerConnection } from "@parley/rtc";
import { connected, createClientPeer, gathered, PortAllocator } from "./fast-leg.js";
import { Histogram, type SparseHistogram } from "./hist.js";
import { Rpc } from "./ipc.js";
import { createMediaPlane, type MediaPlane, type PlaneLeg, type PlaneWindow } from "./media-plane.js";
import { closeNgClient, endRtpengineCall, type PeerCall, rtpengineCall } from "./rtpengine-call.js";
import { SignalClient } from "./signal-client.js";

export interface WindowResult extends PlaneWindow {
  /** Calls the server ended while the generator kept them up. */
  droppedCalls: number;
}

export interface CallTimings {
  /** call.invite sent -> its response at the caller. */
  inviteResponseMs: number;
  /** call.invite sent -> call.incoming at the callee. */
  inviteToRingingMs: number;
  /** Offer created -> leg connected (ICE + DTLS), caller and callee. */
  callerLegMs: number;
  calleeLegMs: number;
  /** call.answer sent -> its response. */
  answerResponseMs: number;
  /** call.answer sent -> first audio packet received, at the callee and at the caller. */
  answerToAudioCalleeMs: number;
  answerToAudioCallerMs: number;
}

let ports = new PortAllocator(10000, 10999);
let index = 0;
let plane: MediaPlane | undefined;
const clients = new Map<string, SignalClient>();
const peers = new Set<RTCPeerConnection>();
const legs = new Set<PlaneLeg>();
const calls: { caller: SignalClient; callId: string }[] = [];

function media(): MediaPlane {
  if (!plane) throw new Error("the generator is not initialised");
  return plane;
}

new Rpc(process, {
  init: async (args: { index: number; portMin: number; portMax: number; frames: string[]; engine: string | null }) => {
    index = args.index;
    ports = new PortAllocator(args.portMin, args.portMax);
    plane = await createMediaPlane(
      args.engine,
      args.frames.map((f) => Buffer.from(f, "base64")),
    );
    return { pid: process.pid, enginePid: plane.enginePid ?? null, dataPlane: plane.kind };
  },
  login: (args: { url: string; users: { username: string; token: string }[]; concurrency: number }) => login(args),
  calls: (args: {
    pairs: { caller: string; callee: string }[];
    concurrency: number;
    answer: "connected" | "ring";
    keep?: boolean;
  }) => setUpCalls(args),
  direct: (args: { count: number; concurrency: number }) => setUpDirect(args),
  rtpengineCalls: (args: { ng: { host: string; port: number }; callIds: string[]; concurrency: number }) =>
    setUpRtpengineCalls(args),
  conference: (args: { host: string; members: string[]; speakers: number; concurrency: number }) =>
    growConference(args),
  measure: (args: { startEpoch: number; endEpoch: number; graceMs: number }) => measure(args),
  hangup: () => hangUpAll(),
  presenceArm: (args: { userId: number }) => armPresence(args.userId),
  presenceCollect: () => collectPresence(),
  loginAs: (args: { url: string; username: string; token: string }) => loginProbe(args),
  passwordLogins: (args: { url: string; users: { username: string; password: string }[]; concurrency: number }) =>
    passwordLogins(args),
  rtt: (args: { clients: number; perClientPerSecond: number; durationMs: number }) => rttProbe(args),
  closeClients: () => closeClients(),
  exit: () => {
    setTimeout(() => process.exit(0), 10);
    return {};
  },
});

process.on("disconnect", () => process.exit(0));

const epochNow = () => performance.timeOrigin + performance.now();

/** Runs `task` over `items` with at most `limit` at once. */
async function pool<T, R>(items: T[], limit: number, task: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await task(items[i]!, i);
    }
  });
  await Promise.all(workers);
  return results;
}

// ---------------------------------------------------------------- measurement

async function measure(args: { startEpoch: number; endEpoch: number; graceMs: number }): Promise<WindowResult> {
  const counted = await media().measure(args.startEpoch, args.endEpoch, args.graceMs);
  return { ...counted, droppedCalls: dropped.size };
}

// ---------------------------------------------------------------- signaling clients

async function login(args: {
  url: string;
  users: { username: string; token: string }[];
  concurrency: number;
}): Promise<{ ms: number; count: number; latency: SparseHistogram; failures: number }> {
  const latency = new Histogram();
  let failures = 0;
  const started = performance.now();
  await pool(args.users, args.concurrency, async (user) => {
    const t0 = performance.now();
    try {
      const client = await SignalClient.resumed(args.url, user.token);
      clients.set(user.username, client);
      watch(client);
      latency.record(performance.now() - t0);
    } catch {
      failures++;
    }
  });
  return { ms: performance.now() - started, count: args.users.length, latency: latency.toSparse(), failures };
}

function client(username: string): SignalClient {
  const found = clients.get(username);
  if (!found) throw new Error(`${username} is not logged in here`);
  return found;
}

type CallEventWaiter = (event: string, data: Record<string, unknown>, at: number) => boolean;
const waiters = new Map<SignalClient, CallEventWaiter[]>();

/** Calls the server ended while we kept them up (counted, never expected during a benchmark). */
const dropped = new Set<string>();

function watch(c: SignalClient): void {
  if (c.onCallEvent) return;
  c.onCallEvent = (event, data, at) => {
    if (event === "call.ended" && calls.some((call) => call.callId === data.callId)) {
      dropped.add(String(data.callId));
    }
    const list = waiters.get(c);
    if (!list) return;
    waiters.set(
      c,
      list.filter((w) => !w(event, data, at)),
    );
  };
}

function waitEvent(
  c: SignalClient,
  match: (event: string, data: Record<string, unknown>) => boolean,
  timeoutMs = 20_000,
): Promise<{ data: Record<string, unknown>; at: number }> {
  watch(c);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("timed out waiting for a call event")), timeoutMs);
    const waiter: CallEventWaiter = (event, data, at) => {
      if (!match(event, data)) return false;
      clearTimeout(timer);
      resolve({ data, at });
      return true;
    };
    waiters.set(c, [...(waiters.get(c) ?? []), waiter]);
  });
}

// ---------------------------------------------------------------- 1:1 calls through the server

/** Offer -> call.media -> answer -> connected; the leg starts sending as soon as it is up (like a softphone's microphone). */
/**
 * One client leg of a call: a peer with `slots` audio m-lines, its offer through `call.media`,
 * connected, then on the fast path. Every leg the generator makes goes through here.
 */
async function negotiateLeg(
  c: SignalClient,
  callId: string,
  slots = 1,
): Promise<{ leg: PlaneLeg; pc: RTCPeerConnection }> {
  const { pc, ssrc } = createClientPeer(ports, slots);
  peers.add(pc);
  await pc.setLocalDescription(await pc.createOffer());
  const offer = await gathered(pc);
  const { sdp } = await c.request<{ sdp: string }>("call.media", { callId, sdp: offer });
  await pc.setRemoteDescription({ type: "answer", sdp });
  await connected(pc);
  const leg = await media().attach(pc, ssrc);
  legs.add(leg);
  return { leg, pc };
}

async function mediaLeg(
  c: SignalClient,
  callId: string,
): Promise<{ leg: PlaneLeg; pc: RTCPeerConnection; ms: number; firstAudio: Promise<number> }> {
  const t0 = performance.now();
  const { leg, pc } = await negotiateLeg(c, callId);
  await leg.stream(1);
  return { leg, pc, ms: performance.now() - t0, firstAudio: leg.firstAudio };
}

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

async function setUpCall(
  pair: { caller: string; callee: string },
  answer: "connected" | "ring",
  keep: boolean,
): Promise<CallTimings> {
  const caller = client(pair.caller);
  const callee = client(pair.callee);
  const ringing = waitEvent(callee, (event) => event === "call.incoming");
  ringing.catch(() => undefined);
  const t0 = performance.now();
  const { call } = await caller.request<{ call: { callId: string } }>("call.invite", { to: pair.callee });
  const tInvited = performance.now();
  const callId = call.callId;
  calls.push({ caller, callId });
  const rang = await ringing;
  const callerLeg = mediaLeg(caller, callId);
  const calleeLeg = mediaLeg(callee, callId);
  // Rejections are handled below; keep Node from treating one as unhandled meanwhile.
  callerLeg.catch(() => undefined);
  calleeLeg.catch(() => undefined);
  try {
    // "connected": answer once the callee's leg is up, as a person would after it rang a moment;
    // "ring": answer the moment it rings (an auto-answering bot), media still being set up.
    if (answer === "connected") await calleeLeg;
    const tAnswer = performance.now();
    await callee.request("call.answer", { callId });
    const tAnswered = performance.now();
    const [a, b] = await Promise.all([callerLeg, calleeLeg]);
    const [callerFirst, calleeFirst] = await within(Promise.all([a.firstAudio, b.firstAudio]), 10_000, "first audio");
    if (!keep) await endCall(caller, callId, [a, b]);
    return {
      inviteResponseMs: tInvited - t0,
      inviteToRingingMs: rang.at - t0,
      callerLegMs: a.ms,
      calleeLegMs: b.ms,
      answerResponseMs: tAnswered - tAnswer,
      answerToAudioCalleeMs: calleeFirst - tAnswer,
      answerToAudioCallerMs: callerFirst - tAnswer,
    };
  } catch (error) {
    // Take down whatever was set up, so a half-made call does not count as lost packets later.
    const settled = await Promise.allSettled([callerLeg, calleeLeg]);
    await endCall(
      caller,
      callId,
      settled.flatMap((r) => (r.status === "fulfilled" ? [r.value] : [])),
    );
    throw error;
  }
}

/** Hangs up one call and takes its legs down (the setup benchmark measures calls one by one). */
async function endCall(caller: SignalClient, callId: string, ends: { leg: PlaneLeg; pc: RTCPeerConnection }[]) {
  const index = calls.findIndex((c) => c.callId === callId);
  if (index >= 0) calls.splice(index, 1);
  await caller.request("call.hangup", { callId }).catch(() => undefined);
  for (const { leg, pc } of ends) {
    await leg.release();
    legs.delete(leg);
    peers.delete(pc);
    await pc.close().catch(() => undefined);
  }
}

async function setUpCalls(args: {
  pairs: { caller: string; callee: string }[];
  concurrency: number;
  answer: "connected" | "ring";
  /** Keep the calls up (relay load) or hang each up once measured (setup latency). */
  keep?: boolean;
}): Promise<{ timings: CallTimings[]; failures: string[]; ms: number }> {
  const failures: string[] = [];
  const started = performance.now();
  const results = await pool(args.pairs, args.concurrency, async (pair) => {
    try {
      return await setUpCall(pair, args.answer, args.keep ?? true);
    } catch (error) {
      failures.push(`${pair.caller}->${pair.callee}: ${(error as Error).message}`);
      return undefined;
    }
  });
  return {
    timings: results.filter((r): r is CallTimings => r !== undefined),
    failures,
    ms: performance.now() - started,
  };
}

// ---------------------------------------------------------------- direct baseline (no server)

async function directPair(): Promise<void> {
  const a = createClientPeer(ports);
  const b = createClientPeer(ports);
  peers.add(a.pc);
  peers.add(b.pc);
  await a.pc.setLocalDescription(await a.pc.createOffer());
  await b.pc.setRemoteDescription({ type: "offer", sdp: await gathered(a.pc) });
  await b.pc.setLocalDescription(await b.pc.createAnswer());
  await a.pc.setRemoteDescription({ type: "answer", sdp: await gathered(b.pc) });
  await Promise.all([connected(a.pc), connected(b.pc)]);
  for (const { pc, ssrc } of [a, b]) {
    const leg = await media().attach(pc, ssrc);
    legs.add(leg);
    await leg.stream(1);
  }
}

async function setUpDirect(args: { count: number; concurrency: number }): Promise<{ ms: number; failures: string[] }> {
  const failures: string[] = [];
  const started = performance.now();
  await pool(Array.from({ length: args.count }), args.concurrency, async () => {
    try {
      await directPair();
    } catch (error) {
      failures.push((error as Error).message);
    }
  });
  return { ms: performance.now() - started, failures };
}

// ---------------------------------------------------------------- 1:1 calls through rtpengine (a peer relay)

/** Calls up through rtpengine, deleted from it at hangup; its ng address. */
const rtpengineCalls: PeerCall[] = [];
let rtpengineNg: { host: string; port: number } | undefined;

async function setUpRtpengineCalls(args: {
  ng: { host: string; port: number };
  callIds: string[];
  concurrency: number;
}): Promise<{ failures: string[]; ms: number }> {
  rtpengineNg = args.ng;
  const failures: string[] = [];
  const started = performance.now();
  await pool(args.callIds, args.concurrency, async (callId) => {
    try {
      const call = await rtpengineCall({ ng: args.ng, callId, ports, plane: media(), track: (pc) => peers.add(pc) });
      for (const end of call.ends) legs.add(end.leg);
      try {
        await within(call.firstAudio, 10_000, "first audio");
      } catch (error) {
        // A call without audio both ways would count as lost packets later: take it down.
        await endRtpengineCall(args.ng, call);
        for (const end of call.ends) legs.delete(end.leg);
        throw error;
      }
      rtpengineCalls.push(call);
    } catch (error) {
      failures.push(`${callId}: ${(error as Error).message}`);
    }
  });
  return { failures, ms: performance.now() - started };
}

async function deleteRtpengineCalls(): Promise<void> {
  const ng = rtpengineNg;
  const ending = rtpengineCalls.splice(0);
  if (ng) await Promise.all(ending.map((call) => endRtpengineCall(ng, call)));
  closeNgClient();
}

// ---------------------------------------------------------------- conferences through the server

/** Receive slots a conference leg offers: one sendrecv m-line and two recvonly, as the web client does. */
const CONFERENCE_SLOTS = 3;
/** The RFC 6464 level speakers send (-30 dBov: voiced, so the server ranks them above silent listeners). */
const SPEAKER_LEVEL = 30;

interface Conference {
  host: string;
  callId: string;
  /** Participants in the order they joined; the first `speakers` send audio. */
  members: { username: string; leg: PlaneLeg; audioLevelId: number | null }[];
  /** How many of the first members send audio so far. */
  speaking: number;
}

/** The conferences this generator holds, by host: several can run at once. */
const conferences = new Map<string, Conference>();

/** The header extension id the local description gives the audio level, or null. */
function audioLevelId(pc: RTCPeerConnection): number | null {
  const match = /^a=extmap:(\d+) urn:ietf:params:rtp-hdrext:ssrc-audio-level/m.exec(pc.localDescription?.sdp ?? "");
  return match ? Number(match[1]) : null;
}

/** A conference leg: offer with receive slots and the audio level, call.media, connected, fast path. */
async function conferenceLeg(c: SignalClient, callId: string): Promise<{ leg: PlaneLeg; levelId: number | null }> {
  const { leg, pc } = await negotiateLeg(c, callId, CONFERENCE_SLOTS);
  return { leg, levelId: audioLevelId(pc) };
}

/** One invitee: rings, sets up media while ringing (as the SDK does), answers. */
async function joinConference(username: string, ringing: Promise<{ data: Record<string, unknown> }>) {
  const c = client(username);
  const { data } = await ringing;
  const callId = String((data.call as { callId: string }).callId);
  const { leg, levelId } = await conferenceLeg(c, callId);
  await c.request("call.answer", { callId });
  return { username, leg, audioLevelId: levelId };
}

/**
 * One conference (of those this generator holds, one per host) through the real signaling, grown
 * to `members` (all logged in here): the host
 * invites the first ones at once (`call.invite` with `to: [...]`), later steps add one user at a
 * time with `call.add`. The first `speakers` participants (the host first) send speech frames
 * with a loud audio level; the others only listen. With speakers <= 3 every listener hears every
 * speaker on its three slots, and each speaker the others, so each speaker packet is expected
 * at every other participant.
 */
async function growConference(args: {
  host: string;
  members: string[];
  speakers: number;
  concurrency: number;
}): Promise<{ ms: number; failures: string[]; participants: number }> {
  const failures: string[] = [];
  const started = performance.now();
  let conference = conferences.get(args.host);
  if (!conference) {
    const host = client(args.host);
    const invitees = args.members.filter((m) => m !== args.host);
    const ringings = invitees.map((username) =>
      waitEvent(client(username), (event) => event === "call.incoming", 30_000),
    );
    for (const r of ringings) r.catch(() => undefined);
    const { call } = await host.request<{ call: { callId: string } }>("call.invite", { to: invitees });
    calls.push({ caller: host, callId: call.callId });
    const hostLeg = await conferenceLeg(host, call.callId);
    conference = {
      host: args.host,
      callId: call.callId,
      members: [{ username: args.host, leg: hostLeg.leg, audioLevelId: hostLeg.levelId }],
      speaking: 0,
    };
    conferences.set(args.host, conference);
    const joined = await pool(invitees, args.concurrency, async (username, i) => {
      try {
        return await joinConference(username, ringings[i]!);
      } catch (error) {
        failures.push(`${username}: ${(error as Error).message}`);
        return undefined;
      }
    });
    for (const member of joined) if (member) conference.members.push(member);
  } else {
    const current = conference;
    const known = new Set(current.members.map((m) => m.username));
    const newcomers = args.members.filter((m) => !known.has(m));
    const host = client(current.host);
    const joined = await pool(newcomers, args.concurrency, async (username) => {
      try {
        const ringing = waitEvent(client(username), (event) => event === "call.incoming", 30_000);
        ringing.catch(() => undefined);
        await host.request("call.add", { callId: current.callId, to: username });
        return await joinConference(username, ringing);
      } catch (error) {
        failures.push(`${username}: ${(error as Error).message}`);
        return undefined;
      }
    });
    for (const member of joined) if (member) current.members.push(member);
  }
  const conf = conference;
  const participants = conf.members.length;
  for (const [i, member] of conf.members.slice(0, args.speakers).entries()) {
    // A new speaker gets its level first; every speaker's packets are now expected at all the others.
    if (i >= conf.speaking && member.audioLevelId !== null) {
      await member.leg.audioLevel(member.audioLevelId, SPEAKER_LEVEL);
    }
    await member.leg.stream(participants - 1);
  }
  conf.speaking = Math.max(conf.speaking, Math.min(args.speakers, participants));
  return { ms: performance.now() - started, failures, participants };
}

// ---------------------------------------------------------------- teardown

async function hangUpAll(): Promise<{ calls: number }> {
  const count = calls.length + rtpengineCalls.length;
  await media().releaseAll();
  await deleteRtpengineCalls();
  // Every participant leaves a conference (it goes on while two remain).
  await Promise.all(
    [...conferences.values()].flatMap((conf) =>
      conf.members.map((m) =>
        client(m.username)
          .request("call.hangup", { callId: conf.callId })
          .catch(() => undefined),
      ),
    ),
  );
  const ending = calls.splice(0);
  await Promise.all(
    ending.map(({ caller, callId }) => caller.request("call.hangup", { callId }).catch(() => undefined)),
  );
  conferences.clear();
  legs.clear();
  await Promise.all([...peers].map((pc) => pc.close().catch(() => undefined)));
  peers.clear();
  return { calls: count };
}

function closeClients(): { closed: number } {
  const count = clients.size;
  for (const c of clients.values()) c.close();
  clients.clear();
  waiters.clear();
  return { closed: count };
}

// ---------------------------------------------------------------- signaling probes

const presenceSeen: number[] = [];
let presenceNeedle: string | undefined;

/** Every client here records when it first hears that `userId` came online. */
function armPresence(userId: number): { armed: number } {
  presenceSeen.length = 0;
  presenceNeedle = `"userId":${userId},`;
  for (const c of clients.values()) {
    let seen = false;
    c.onPresence = (text, at) => {
      if (seen || !presenceNeedle || !text.includes(presenceNeedle) || text.includes('"status":"offline"')) return;
      seen = true;
      presenceSeen.push(performance.timeOrigin + at);
    };
  }
  return { armed: clients.size };
}

function collectPresence(): { seen: number[] } {
  for (const c of clients.values()) c.onPresence = undefined;
  presenceNeedle = undefined;
  return { seen: [...presenceSeen] };
}

/** One login by token; returns when it was sent (epoch ms) and how long it took. */
async function loginProbe(args: { url: string; username: string; token: string }) {
  const c = await SignalClient.open(args.url);
  await c.hello();
  const sentAt = epochNow();
  const t0 = performance.now();
  await c.request("auth.resume", { token: args.token });
  const ms = performance.now() - t0;
  clients.set(args.username, c);
  return { sentAt, ms };
}

/** Logins with a password (scrypt on the server) on fresh connections. */
async function passwordLogins(args: {
  url: string;
  users: { username: string; password: string }[];
  concurrency: number;
}) {
  const latency = new Histogram();
  let failures = 0;
  const started = performance.now();
  await pool(args.users, args.concurrency, async (user) => {
    const c = await SignalClient.open(args.url);
    try {
      await c.hello();
      const t0 = performance.now();
      await c.request("auth.login", { username: user.username, password: user.password, deviceName: "bench" });
      latency.record(performance.now() - t0);
    } catch {
      failures++;
    } finally {
      c.close();
    }
  });
  return { ms: performance.now() - started, count: args.users.length, failures, latency: latency.toSparse() };
}

/** `account.get` round trips from `clients` connections, each at `perClientPerSecond`, for `durationMs`. */
async function rttProbe(args: { clients: number; perClientPerSecond: number; durationMs: number }) {
  const chosen = [...clients.values()].filter((c) => !c.closed).slice(0, args.clients);
  const latency = new Histogram();
  let failures = 0;
  const end = performance.now() + args.durationMs;
  const period = 1000 / args.perClientPerSecond;
  await Promise.all(
    chosen.map(async (c, i) => {
      await new Promise((resolve) => setTimeout(resolve, (i * period) / Math.max(1, chosen.length)));
      while (performance.now() < end) {
        const t0 = performance.now();
        try {
          await c.request("account.get", {});
          latency.record(performance.now() - t0);
        } catch {
          failures++;
        }
        const wait = t0 + period - performance.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }),
  );
  return { latency: latency.toSparse(), failures, clients: chosen.length, index };
}
