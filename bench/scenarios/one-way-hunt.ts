import fs from "node:fs";
import path from "node:path";
import { type Call, ParleyClient, type WebSocketLike } from "@parley/client";
import WebSocket from "ws";
import type { Context } from "../lib/cluster.js";
import { connected, createClientPeer, PortAllocator } from "../lib/fast-leg.js";
import { encodeTone, HuntLeg, ToneClock } from "../lib/one-way-hunt-leg.js";
import {
  callVerdict,
  type DirectionReport,
  type Interval,
  judgeDirection,
  judgedWindows,
  type Verdict,
} from "../lib/one-way-hunt-verdict.js";
import { CpuMeter, PORTS, ROOT, sleep, startServerProcess, tempDir } from "../lib/proc.js";
import { type SeededUser, seedUsers } from "../lib/seed.js";

/**
 * A one-way-audio hunt: N calls through the real server between SDK clients (packages/client, in
 * this process) whose media legs send a tone of their own and analyse what they receive per second
 * (lib/one-way-hunt-leg.ts). Calls start staggered (BENCH_HUNT_RATE a second, 10 by default); one
 * in ten is cancelled while it rings and one in ten declined; the others are answered after 0-3 s,
 * and of those about 30% are held and resumed by one party, 20% get a second call while talking
 * (call waiting: the callee answers it, which holds the first, talks, switches back and hangs the
 * second up), the rest just talk for 3-10 s; then a random party hangs up. Every answered call is
 * judged from the received audio (lib/one-way-hunt-verdict.ts): each party must hear the other's
 * tone in every second of the answered part away from holds. Loopback only; bounded in calls and
 * time. BENCH_HUNT_CALLS sets N (300, 30 with --quick), BENCH_HUNT_SEED the random plan.
 */

type Kind = "plain" | "hold" | "waiting" | "waiting-second";

interface Plan {
  outcome: "answered" | "cancelled" | "declined";
  kind: Exclude<Kind, "waiting-second">;
  ringMs: number;
  answerMs: number;
  durationMs: number;
  preMs: number;
  holdMs: number;
  postMs: number;
  holderIsCaller: boolean;
  callerHangsUp: boolean;
  ring2Ms: number;
  talk2Ms: number;
  afterSwitchMs: number;
  waitingCallerHangsUp: boolean;
}

/** A small seeded generator (mulberry32), so a bad run's plan can be replayed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function plan(rnd: () => number): Plan {
  const between = (min: number, max: number) => Math.round(min + rnd() * (max - min));
  const r = rnd();
  const kindDraw = rnd();
  return {
    outcome: r < 0.1 ? "cancelled" : r < 0.2 ? "declined" : "answered",
    kind: kindDraw < 0.2 ? "waiting" : kindDraw < 0.5 ? "hold" : "plain",
    ringMs: between(500, 2500),
    answerMs: between(0, 3000),
    durationMs: between(3000, 10_000),
    preMs: between(2500, 4000),
    holdMs: between(1000, 2500),
    postMs: between(3000, 6000),
    holderIsCaller: rnd() < 0.5,
    callerHangsUp: rnd() < 0.5,
    ring2Ms: between(300, 1500),
    talk2Ms: between(3000, 5000),
    afterSwitchMs: between(500, 1000),
    waitingCallerHangsUp: rnd() < 0.5,
  };
}

/** Periods a call was on hold, as one party's client saw them (call.info pushes). */
class HoldTracker {
  readonly intervals: Interval[] = [];
  #since: number | undefined;

  constructor(call: Call) {
    call.on("info", (info) => {
      const held = info.participants.some((p) => p.held && p.state !== "left");
      const now = Date.now();
      if (held && this.#since === undefined) this.#since = now;
      else if (!held && this.#since !== undefined) {
        this.intervals.push({ from: this.#since, to: now });
        this.#since = undefined;
      }
    });
  }

  close(at: number): Interval[] {
    if (this.#since !== undefined) this.intervals.push({ from: this.#since, to: at });
    this.#since = undefined;
    return this.intervals;
  }
}

interface Party {
  name: string;
  user: SeededUser;
  hz: number;
  client: ParleyClient;
  legs: Map<string, HuntLeg>;
}

interface CallRecord {
  label: string;
  kind: Kind;
  outcome: Plan["outcome"];
  callId?: string;
  caller?: Party;
  callee?: Party;
  answeredAt?: number;
  endedAt?: number;
  trackers: HoldTracker[];
  endReasons: string[];
  error?: string;
}

export interface BadCall {
  label: string;
  callId: string | undefined;
  kind: Kind;
  verdict: Verdict | "error";
  error?: string;
  directions: DirectionReport[];
  holds: { fromS: number; toS: number }[];
}

/** User i's tone: 16 frequencies 200 Hz apart, so the parties of a call (and of nearby calls) differ. */
function toneOf(index: number): number {
  return 400 + 200 * (index % 16);
}

/** Who sends `hz`: the users with that tone, as "u46 (#15 B)" (caller A, callee B, waiting caller C). */
function whoseTone(hz: number, calls: number): string {
  const slot = Math.round((hz - 400) / 200);
  if (hz === 0) return "silence";
  if (slot < 0 || slot >= 16 || Math.abs(toneOf(slot) - hz) > 30) return "not a party's tone";
  const owners: string[] = [];
  for (let i = slot; i < 3 * calls && owners.length < 4; i += 16)
    owners.push(`u${i} (#${Math.floor(i / 3)} ${"ABC"[i % 3]})`);
  return `${toneOf(slot)} Hz, sent by ${owners.join(" or ")}${3 * calls > slot + 64 ? " or others" : ""}`;
}

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

function nextIncoming(party: Party): Promise<Call> {
  return new Promise((resolve) => party.client.once("incomingCall", resolve));
}

export async function oneWayHuntScenario(ctx: Context) {
  const calls = Number(process.env.BENCH_HUNT_CALLS ?? (ctx.quick ? 30 : 300));
  const rate = Number(process.env.BENCH_HUNT_RATE ?? 10);
  const seed = Number(process.env.BENCH_HUNT_SEED ?? Math.floor(Math.random() * 2 ** 31));
  if (!(calls > 0) || !(rate > 0)) throw new Error("BENCH_HUNT_CALLS and BENCH_HUNT_RATE must be positive numbers");
  const rnd = random(seed);
  const plans = Array.from({ length: calls }, () => plan(rnd));
  const dataDir = tempDir("parley-bench-hunt-");
  const users = await seedUsers(dataDir, 3 * calls);
  const hzOf = new Map<number, number>(users.map((u, i) => [u.id, toneOf(i)]));
  const tones = new Map<number, Buffer[]>();
  const toneFor = (hz: number) => {
    let frames = tones.get(hz);
    if (!frames) {
      frames = encodeTone(hz);
      tones.set(hz, frames);
    }
    return frames;
  };
  const server = await startServerProcess({ dataDir, pin: ctx.pinning.server });
  const ports = new PortAllocator(PORTS.generators.min, PORTS.generators.max);
  const clock = new ToneClock();
  const records: CallRecord[] = [];
  const parties: Party[] = [];
  const cpu = new CpuMeter([server.pid, process.pid]);
  const started = Date.now();

  const connectParty = async (index: number, name: string): Promise<Party> => {
    const user = users[index]!;
    const hz = hzOf.get(user.id)!;
    const legs = new Map<string, HuntLeg>();
    const client = new ParleyClient({
      url: server.url,
      webSocket: (url) => new WebSocket(url, { perMessageDeflate: false }) as unknown as WebSocketLike,
      client: { name: "parley-bench-hunt", version: "1" },
      receiveStreams: 1,
      createPeerConnection: (call) => {
        const { pc, ssrc } = createClientPeer(ports, 1);
        const leg = new HuntLeg(toneFor(hz));
        leg.expectHz = hzOf.get(call.peers[0]?.userId ?? -1) ?? 0;
        legs.set(call.id, leg);
        clock.legs.add(leg);
        connected(pc, 30_000).then(
          () => leg.attach(pc, ssrc),
          (error: Error) => {
            leg.failure ??= `media not connected: ${error.message}`;
          },
        );
        call.on("mediaError", (error) => {
          leg.failure ??= `media error: ${error.message}`;
        });
        call.on("ended", () => {
          leg.stop();
          clock.legs.delete(leg);
        });
        return pc;
      },
    });
    const party: Party = { name, user, hz, client, legs };
    parties.push(party);
    await client.connect();
    await client.resume(user.token);
    return party;
  };

  const runCall = async (i: number, p: Plan) => {
    const record: CallRecord = { label: `#${i}`, kind: p.kind, outcome: p.outcome, trackers: [], endReasons: [] };
    records.push(record);
    let second: CallRecord | undefined;
    const mine: Party[] = [];
    try {
      const [a, b] = await Promise.all([connectParty(3 * i, "A"), connectParty(3 * i + 1, "B")]);
      mine.push(a, b);
      record.caller = a;
      record.callee = b;
      const ringing = nextIncoming(b);
      const callA = await a.client.call(b.user.username);
      record.callId = callA.id;
      const callB = await within(ringing, 10_000, "call.incoming");
      record.trackers.push(new HoldTracker(callA), new HoldTracker(callB));
      const ended = Promise.all([callA.whenEnded(), callB.whenEnded()]);
      if (p.outcome === "cancelled") {
        await sleep(p.ringMs);
        await callA.hangup();
      } else if (p.outcome === "declined") {
        await sleep(p.ringMs);
        await callB.decline();
      } else {
        await sleep(p.answerMs);
        await callB.answer();
        record.answeredAt = Date.now();
        if (p.kind === "hold") {
          await sleep(p.preMs);
          const holder = p.holderIsCaller ? callA : callB;
          await holder.hold();
          await sleep(p.holdMs);
          await holder.resume();
          await sleep(p.postMs);
        } else if (p.kind === "waiting") {
          await sleep(p.preMs);
          const c = await connectParty(3 * i + 2, "C");
          mine.push(c);
          second = {
            label: `#${i}w`,
            kind: "waiting-second",
            outcome: "answered",
            caller: c,
            callee: b,
            trackers: [],
            endReasons: [],
          };
          records.push(second);
          const ringing2 = nextIncoming(b);
          const callC = await c.client.call(b.user.username);
          second.callId = callC.id;
          const callB2 = await within(ringing2, 10_000, "call.incoming (waiting)");
          second.trackers.push(new HoldTracker(callC), new HoldTracker(callB2));
          const ended2 = Promise.all([callC.whenEnded(), callB2.whenEnded()]);
          await sleep(p.ring2Ms);
          await callB2.answer(); // puts the first call on hold
          second.answeredAt = Date.now();
          await sleep(p.talk2Ms);
          await callB.resume(); // back to the first call; the second goes on hold
          await sleep(p.afterSwitchMs);
          second.endedAt = Date.now();
          await (p.waitingCallerHangsUp ? callC : callB2).hangup();
          const ends = await within(ended2, 10_000, "the waiting call's end");
          second.endReasons = ends.map((e) => e.reason);
          await sleep(p.postMs);
        } else {
          await sleep(p.durationMs);
        }
        record.endedAt = Date.now();
        await (p.callerHangsUp ? callA : callB).hangup();
      }
      const ends = await within(ended, 10_000, "the call's end");
      record.endReasons = ends.map((e) => e.reason);
    } catch (error) {
      const message = (error as Error).message;
      if (second && second.endedAt === undefined) second.error = message;
      else record.error = message;
      record.endedAt ??= Date.now();
    } finally {
      // The legs' last windows close with their calls; then the parties sign off.
      for (const party of mine) party.client.disconnect();
    }
  };

  const running: Promise<void>[] = [];
  try {
    for (let i = 0; i < calls; i++) {
      const due = started + (i * 1000) / rate;
      const wait = due - Date.now();
      if (wait > 0) await sleep(wait);
      running.push(runCall(i, plans[i]!));
      if ((i + 1) % 50 === 0) ctx.log(`one-way hunt: ${i + 1} of ${calls} calls placed`);
    }
    // Every call script ends by itself (each step is bounded); this bounds the whole run as well.
    await within(Promise.all(running), 120_000, "the last calls").catch((error: Error) => {
      ctx.log(`one-way hunt: ${error.message}`);
    });
  } finally {
    clock.stop();
    for (const party of parties) {
      for (const leg of party.legs.values()) leg.stop();
      party.client.disconnect();
    }
  }
  const usage = cpu.read();
  const seconds = (Date.now() - started) / 1000;
  await server.stop();
  fs.rmSync(dataDir, { recursive: true, force: true });
  return summarise({
    calls,
    rate,
    seed,
    records,
    seconds,
    serverCpuPct: usage.pct[0]!,
    benchCpuPct: usage.pct[1]!,
    stalls: clock.stalls,
  });
}

function summarise(run: {
  calls: number;
  rate: number;
  seed: number;
  records: CallRecord[];
  seconds: number;
  serverCpuPct: number;
  benchCpuPct: number;
  stalls: Interval[];
}) {
  const verdicts: Record<Verdict | "error", number> = {
    ok: 0,
    "late-start": 0,
    "with-gaps": 0,
    crossed: 0,
    "one-way": 0,
    silent: 0,
    unjudged: 0,
    error: 0,
  };
  const byKind: Record<string, { answered: number } & Partial<Record<Verdict | "error", number>>> = {};
  const bad: BadCall[] = [];
  let answered = 0;
  let judgedSeconds = 0;
  let stalledSeconds = 0;
  const outcomes = { answered: 0, cancelled: 0, declined: 0 };
  const lateAudioMs: number[] = [];
  for (const record of run.records) {
    if (record.kind !== "waiting-second") outcomes[record.outcome]++;
    if (record.answeredAt === undefined) {
      if (record.error) {
        verdicts.error++;
        bad.push({
          label: record.label,
          callId: record.callId,
          kind: record.kind,
          verdict: "error",
          error: record.error,
          directions: [],
          holds: [],
        });
      }
      continue;
    }
    answered++;
    const kind = byKind[record.kind] ?? { answered: 0 };
    byKind[record.kind] = kind;
    kind.answered++;
    const endedAt = record.endedAt ?? Date.now();
    const held = record.trackers.flatMap((t) => t.close(endedAt));
    const { windows, stalled } = judgedWindows(record.answeredAt, endedAt, held, run.stalls);
    stalledSeconds += stalled;
    const callId = record.callId ?? "";
    const ab = judgeDirection("A->B", record.callee?.legs.get(callId), record.answeredAt, windows);
    const ba = judgeDirection("B->A", record.caller?.legs.get(callId), record.answeredAt, windows);
    if (record.kind === "waiting-second") {
      ab.direction = "C->B";
      ba.direction = "B->C";
    }
    judgedSeconds += windows.length;
    for (const d of [ab, ba]) {
      for (const m of d.missing) if (m.otherHz !== undefined) m.whose = whoseTone(m.otherHz, run.calls);
    }
    for (const d of [ab, ba]) if (d.firstAudioMs !== null) lateAudioMs.push(d.firstAudioMs);
    const verdict: Verdict | "error" = record.error ? "error" : callVerdict(ab, ba);
    verdicts[verdict]++;
    kind[verdict] = (kind[verdict] ?? 0) + 1;
    if (verdict !== "ok") {
      bad.push({
        label: record.label,
        callId: record.callId,
        kind: record.kind,
        verdict,
        ...(record.error ? { error: record.error } : {}),
        directions: [ab, ba],
        holds: mergeIntervals(held).map((h) => ({
          fromS: Math.round(h.from - record.answeredAt!) / 1000,
          toS: Math.round(h.to - record.answeredAt!) / 1000,
        })),
      });
    }
  }
  lateAudioMs.sort((x, y) => x - y);
  const quantile = (q: number) =>
    lateAudioMs.length
      ? Math.round(lateAudioMs[Math.min(lateAudioMs.length - 1, Math.floor(q * lateAudioMs.length))]!)
      : null;
  return {
    calls: run.calls,
    ratePerSecond: run.rate,
    seed: run.seed,
    seconds: Math.round(run.seconds),
    placed: outcomes.answered + outcomes.cancelled + outcomes.declined,
    outcomes,
    /** Answered calls judged, the waiting (second) calls included. */
    answered,
    judgedSeconds,
    /** Call-seconds left unjudged because the bench process stalled in them (its own load, not the server's). */
    benchStalls: {
      count: run.stalls.length,
      longestMs: Math.max(0, ...run.stalls.map((s) => s.to - s.from)),
      callSecondsLeftOut: stalledSeconds,
    },
    verdicts,
    byKind,
    /** Answer -> first packet heard, per direction (ms; both parties' legs connect while the call rings). */
    firstAudioMs: { p50: quantile(0.5), p99: quantile(0.99), max: lateAudioMs.at(-1) ?? null },
    serverCpuPct: Math.round(run.serverCpuPct),
    benchCpuPct: Math.round(run.benchCpuPct),
    bad,
  };
}

/** The union of possibly overlapping intervals (both parties report the same holds). */
function mergeIntervals(intervals: Interval[]): Interval[] {
  const out: Interval[] = [];
  for (const h of [...intervals].sort((x, y) => x.from - y.from)) {
    const last = out.at(-1);
    if (last && h.from <= last.to) last.to = Math.max(last.to, h.to);
    else out.push({ ...h });
  }
  return out;
}

export type OneWayHuntResult = Awaited<ReturnType<typeof oneWayHuntScenario>>;

/** The figures as printed to the console: one line of counts, one per bad call. */
export function huntLines(result: OneWayHuntResult): string[] {
  const v = result.verdicts;
  const lines = [
    `one-way hunt: ${result.placed} calls placed (${result.outcomes.cancelled} cancelled, ${result.outcomes.declined} declined), ` +
      `${result.answered} answered calls judged over ${result.judgedSeconds} s: ${v.ok} ok, ${v["one-way"]} one-way, ` +
      `${v.silent} silent, ${v["with-gaps"]} with gaps, ${v["late-start"]} late start, ${v.crossed} crossed, ` +
      `${v.unjudged} too short to judge, ${v.error} failed; the bench process stalled ${result.benchStalls.count} times ` +
      `(longest ${result.benchStalls.longestMs} ms), leaving ${result.benchStalls.callSecondsLeftOut} call-seconds unjudged`,
  ];
  for (const call of result.bad) lines.push(`  ${badCallLine(call)}`);
  return lines;
}

function badCallLine(call: BadCall): string {
  const parts = [`${call.label} (${call.kind}, call ${call.callId ?? "?"}): ${call.verdict}`];
  if (call.error) parts.push(`error: ${call.error}`);
  for (const d of call.directions) {
    if (d.missing.length === 0 && d.other === 0 && !d.failure) continue;
    const missing = d.missing
      .map((m) => `${m.second}s (${m.packets} pkts${m.otherHz !== undefined ? `, ${m.otherHz} Hz: ${m.whose}` : ""})`)
      .join(", ");
    parts.push(
      `${d.direction} heard ${d.heard}/${d.judged} s` +
        (d.other ? `, ${d.other} s of other audio` : "") +
        (missing ? `, missing at ${missing}` : "") +
        `, leg connected ${d.legConnectedMs ?? "never"} ms, first packet ${d.firstAudioMs ?? "never"} ms after the answer` +
        (d.authFailures ? `, ${d.authFailures} auth failures` : "") +
        (d.failure ? `, ${d.failure}` : ""),
    );
  }
  if (call.holds.length) parts.push(`held ${call.holds.map((h) => `${h.fromS}-${h.toS}s`).join(", ")}`);
  return parts.join("; ");
}

const DOC = path.join(ROOT, "docs/performance.md");
const BLOCK = "one-way-hunt";

/** Rewrites the page's one-way-hunt block from a saved result record (bench/results/one-way-hunt.json). */
export function writeOneWayHuntDocs(file: string): void {
  const record = JSON.parse(fs.readFileSync(file, "utf8")) as {
    date: string;
    command: string;
    machine: { cores: number; cpuModel: string; loadAverage: number[] };
    scenarioSeconds: number;
    result: OneWayHuntResult;
  };
  const r = record.result;
  const v = r.verdicts;
  const cpu = record.machine.cpuModel.split(" ").slice(0, 2).join(" ");
  const kinds = ["plain", "hold", "waiting", "waiting-second"] as const;
  const kindName = {
    plain: "Talk only",
    hold: "Held and resumed",
    waiting: "Call waiting: the first call",
    "waiting-second": "Call waiting: the second call",
  };
  const row = (name: string, c: Partial<Record<Verdict | "error", number>> & { answered: number }) =>
    `| ${name} | ${c.answered} | ${c.ok ?? 0} | ${c["one-way"] ?? 0} | ${c.silent ?? 0} | ${c["with-gaps"] ?? 0} | ${c["late-start"] ?? 0} | ${c.crossed ?? 0} | ${(c.unjudged ?? 0) + (c.error ?? 0)} |`;
  const lines = [
    `Measured ${record.date} on ${record.machine.cores} cores (${cpu}), \`${record.command}\`, ` +
      `${r.calls} calls started ${r.ratePerSecond} a second (seed ${r.seed}), ${r.seconds} s, machine load average ` +
      `${record.machine.loadAverage[0]} at the start (the machine is shared); ` +
      `server ${r.serverCpuPct}% of a core, the bench's clients ${r.benchCpuPct}%; the bench process stalled ` +
      `${r.benchStalls.count} times (longest ${r.benchStalls.longestMs} ms), and the ${r.benchStalls.callSecondsLeftOut} ` +
      "call-seconds it stalled in were left unjudged.",
    "",
    `**${r.placed} calls placed, ${r.outcomes.cancelled} cancelled while ringing, ${r.outcomes.declined} declined; ` +
      `${r.answered} answered calls judged (the call-waiting second calls included) over ${r.judgedSeconds} call-seconds: ` +
      `${v["one-way"]} one-way, ${v.silent} silent, ${v["with-gaps"]} with gaps.** ` +
      `Answer to first packet heard: p50 ${r.firstAudioMs.p50} ms, p99 ${r.firstAudioMs.p99} ms, max ${r.firstAudioMs.max} ms.`,
    "",
    "| Calls | Answered | Both ways throughout | One-way | Silent | With gaps | Late start | Crossed | Not judged / failed |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ...kinds.filter((k) => r.byKind[k]).map((k) => row(kindName[k], r.byKind[k]!)),
    row("All", { ...v, answered: r.answered }),
  ];
  if (r.bad.length) {
    lines.push("", "Calls that were not both ways throughout:", "");
    for (const call of r.bad.slice(0, 20)) lines.push(`- ${badCallLine(call)}`);
    if (r.bad.length > 20) lines.push(`- ... and ${r.bad.length - 20} more (bench/results/one-way-hunt.json)`);
  }
  const doc = fs.readFileSync(DOC, "utf8");
  const start = `<!-- bench:${BLOCK} -->`;
  const end = `<!-- /bench:${BLOCK} -->`;
  const i = doc.indexOf(start);
  const j = doc.indexOf(end);
  if (i < 0 || j < i) throw new Error(`docs/performance.md has no ${start} block`);
  fs.writeFileSync(DOC, `${doc.slice(0, i + start.length)}\n${lines.join("\n")}\n${doc.slice(j)}`);
}
