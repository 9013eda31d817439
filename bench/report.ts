/**
 * Renders bench/results/*.json into docs/performance.md (the blocks between
 * `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`; the prose around them is left alone) and
 * docs/perf-*.svg. `npm run bench` calls it after a full run; run it by hand to re-render:
 *
 *   node --import tsx bench/report.ts [RESULTS_DIR]
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { lineChart } from "./lib/svg.js";
import { relayVerdict } from "./scenarios/relay.js";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const DOC = path.join(ROOT, "docs/performance.md");

// biome-ignore lint/suspicious/noExplicitAny: the result files are plain JSON written by run.ts
type Json = any;

function read(dir: string, name: string): Json | undefined {
  const file = path.join(dir, `${name}.json`);
  return fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, "utf8")) : undefined;
}

const n = (v: number | null | undefined, digits = 1) =>
  v === null || v === undefined || !Number.isFinite(v) ? "–" : String(Math.round(v * 10 ** digits) / 10 ** digits);

function table(head: string[], rows: (string | number)[][]): string {
  return [
    `| ${head.join(" | ")} |`,
    `| ${head.map(() => "---").join(" | ")} |`,
    ...rows.map((r) => `| ${r.join(" | ")} |`),
  ].join("\n");
}

function generatorsNote(any: Json): string {
  const processes = `${any.generators} load generator process${any.generators === 1 ? "" : "es"}`;
  const plane =
    any.generatorDataPlane === "native"
      ? `${processes}, ${any.generators === 1 ? "with its" : "each with its"} native RTP engine (\`bench/native/rtp-engine.c\`)`
      : `${processes} on their Node data plane`;
  return `${plane} (call setup and signaling: at least three client processes)`;
}

function envBlock(any: Json, run: Json | undefined): string {
  const m = any.machine;
  const load = run?.result?.loadAverage1m;
  return [
    `Measured ${any.date.slice(0, 16).replace("T", " ")} UTC on ${m.cpuModel}, ${m.cores} cores, ${m.memoryGiB} GiB, ` +
      `${m.os}; Node ${any.node}; commit \`${any.git.commit.slice(0, 12)}\`${any.git.dirty ? " (with uncommitted changes in the tree)" : ""}.`,
    `${any.pinning.note}; ${generatorsNote(any)}. Command: \`${run?.command ?? any.command}\`` +
      (run?.result?.seconds ? `, ${Math.round(run.result.seconds / 60)} min in all.` : "."),
    load
      ? `Machine load (1-minute load average, the bench's own processes included) ${load.atStart} at the start, ` +
        `${load.mean} on average, ${load.max} at most.`
      : "",
  ]
    .filter(Boolean)
    .join("\n");
}

/** ", and 80 passed too": a step above the capacity that passed after one that failed (a GC stall). */
function passedAbove(v: Json): string {
  return v.highestPassingCalls > v.capacityCalls ? `; ${v.highestPassingCalls} passed too, a step between failed` : "";
}

/** Calls one core carries at `us` µs of CPU per forwarded packet (a call forwards 2 x 50 packets/s). */
export const callsPerCore = (us: number | null | undefined) => (us ? Math.floor(1e6 / (us * 100)) : null);

/** A ramp's per-core figures: the verdict's capacity and its CPU per packet at its busiest clean step. */
function perCoreOf(v: Json | undefined) {
  const a = v?.averageCeiling;
  return {
    capacity: v?.capacityCalls as number | undefined,
    calls: a?.calls as number | undefined,
    us: (a?.usPerPacket ?? null) as number | null,
    mediaUs: (a?.mediaUsPerPacket ?? null) as number | null,
    perCore: callsPerCore(a?.usPerPacket),
  };
}

const ratio = (a: number | null | undefined, b: number | null | undefined) => (a && b ? n(a / b, 1) : "–");

/**
 * The same load for every relay: the highest step each of them carried without loss, with the generator on schedule. CPU per
 * packet falls as load rises (more packets per wake-up and per batch), so comparing relays at their
 * own busiest steps favours the one driven hardest; at one common step the comparison is like for
 * like (and conservative for the cheapest relay, whose fixed costs weigh most there).
 */
export function commonStep(verdicts: Json[]): { calls: number; steps: Json[] } | null {
  const clean = verdicts.map(
    (v) => new Set((v.steps as Json[]).filter((s) => s.lossPct < 0.1 && s.keptUp !== false).map((s) => s.calls)),
  );
  const calls = [...(clean[0] ?? [])].filter((c) => clean.every((set) => set.has(c))).sort((a, b) => a - b);
  const at = calls.at(-1);
  if (at === undefined) return null;
  return { calls: at, steps: verdicts.map((v) => (v.steps as Json[]).find((s) => s.calls === at)) };
}

function headlineBlock(
  verdict: Json,
  loopVerdict: Json | undefined,
  jsVerdict: Json | undefined,
  weriftVerdict: Json | undefined,
  rtpengine: { run: Json; verdict: Json | undefined } | undefined,
  syscallsVerdict: Json | undefined,
): string {
  const v = verdict.result;
  const native = perCoreOf(v);
  const head = [
    "Relay (same run, same core, same load generator and legs)",
    "Within the limits: highest step passed",
    "CPU per forwarded packet (at the busiest step without loss or a long queue)",
    "Calls per core by CPU",
    "Native plane per core: times this",
  ];
  const row = (name: string, v: Json | undefined, note = ""): (string | number)[] => {
    const f = perCoreOf(v);
    return [
      name,
      v ? `${v.capacityCalls}${note}${passedAbove(v)}` : "–",
      f.us ? `${n(f.us)} µs at ${f.calls} calls` : "–",
      f.perCore ?? "–",
      ratio(native.perCore, f.perCore),
    ];
  };
  const rows: (string | number)[][] = [
    [
      "**Parley, native data plane** (the default: one media thread, the whole server process on one core)",
      `**${v.capacityCalls}** (server at ${n(v.serverCpuPctAtCapacity)}% of its core)${passedAbove(v)}`,
      native.us ? `**${n(native.us)} µs** at ${native.calls} calls` : "–",
      `**${native.perCore ?? "–"}**`,
      "1",
    ],
    [
      "Parley, native data plane: its media thread alone (the part that scales with `--media-threads`)",
      "",
      native.mediaUs ? `${n(native.mediaUs)} µs` : "–",
      callsPerCore(native.mediaUs) ?? "–",
      "",
    ],
  ];
  if (syscallsVerdict) {
    rows.push(
      row(
        "Parley, native data plane with `--media-io-uring off` (a system call per socket, as where io_uring is refused)",
        syscallsVerdict.result,
      ),
    );
  }
  if (loopVerdict) rows.push(row("Parley, native, event loop alone on the core", loopVerdict.result));
  if (jsVerdict) rows.push(row("Parley, JS fast plane (`--media-data-plane js`, the fallback)", jsVerdict.result));
  const peer = rtpengine?.verdict?.result;
  if (peer) {
    rows.push(
      row(
        `rtpengine ${rtpengine!.run.result.peer.version} (userspace forwarding, one worker thread, all its threads on the core)`,
        peer,
      ),
    );
  } else if (rtpengine?.run.result.skipped) {
    rows.push(["rtpengine: not measured in this run", rtpengine.run.result.skipped, "–", "–", "–"]);
  }
  if (weriftVerdict) rows.push(row("Parley on werift's RTP stack (`--media-data-plane werift`)", weriftVerdict.result));
  const lines = [table(head, rows)];
  const named: [string, Json][] = [["native", v]];
  if (jsVerdict) named.push(["JS fast plane", jsVerdict.result]);
  if (peer) named.push(["rtpengine", peer]);
  const common = named.length > 1 ? commonStep(named.map(([, x]) => x)) : null;
  if (common) {
    const [mine, ...others] = common.steps;
    lines.push(
      "",
      `**At the same load**, ${common.calls} calls (the highest step every one of them carried without loss), CPU per ` +
        `forwarded packet: ${named
          .map(([name], i) => {
            const s = common.steps[i];
            return `${name} ${n(s.serverUsPerPacket)} µs${s.mediaUsPerPacket ? ` (media thread ${n(s.mediaUsPerPacket)})` : ""}`;
          })
          .join(", ")}; the native plane's whole process costs ` +
        others
          .map((o, i) => `${ratio(o.serverUsPerPacket, mine.serverUsPerPacket)} times less than ${named[i + 1]![0]}`)
          .join(" and ") +
        ` there (calls per core at these costs: ${named.map(([name], i) => `${name} ${callsPerCore(common.steps[i].serverUsPerPacket)}`).join(", ")}).`,
    );
  }
  const at = v.averageCeiling ? (v.steps as Json[]).find((s) => s.calls === v.averageCeiling.calls) : undefined;
  if (at?.generatorsCpuPct && at.serverCpuPct) {
    lines.push(
      "",
      `At ${at.calls} calls on the native plane the load generator (its Node process and RTP engine, on the other core) ` +
        `used ${n(at.generatorsCpuPct)}% of a core against the server's ${n(at.serverCpuPct)}%` +
        (at.engine
          ? `; the engine's own accounting: ${n(at.engine.sendUs)} µs per packet sent, ${n(at.engine.receiveUs)} µs per packet received.`
          : "."),
    );
  }
  return lines.join("\n");
}

/** The issue's goals, each with the figure this run measured and whether it is met. */
function goalsBlock(r: {
  verdict: Json;
  jsVerdict: Json | undefined;
  rtpengineVerdict: Json | undefined;
  relay: Json;
  relayJs: Json | undefined;
  conference: Json | undefined;
  conferenceJs: Json | undefined;
  threads: { run: Json; verdict: Json }[];
  signaling: Json | undefined;
}): string {
  const native = perCoreOf(r.verdict.result);
  const js = perCoreOf(r.jsVerdict?.result);
  const peer = perCoreOf(r.rtpengineVerdict?.result);
  const yes = (ok: boolean | null) => (ok === null ? "not measured" : ok ? "**met**" : "**not met**");
  const rows: string[][] = [];
  const top = (r.verdict.result.steps as Json[]).at(-1);
  const bound =
    `native within the limits at every step up to ${r.verdict.result.capacityCalls} calls ` +
    `(server at ${n(r.verdict.result.serverCpuPctAtCapacity)}% of its core${top && top.calls > r.verdict.result.capacityCalls ? `; the ramp ended at ${top.calls} calls, with the server at ${n(top.serverCpuPct)}% of its core and the load generator at ${n(top.generatorsCpuPct)}% of the other, ${n(top.lossPct)}% lost` : ""})`;
  // The same-load comparison (see commonStep): the goals are judged on the lower of the two ratios.
  const sameLoad = (other: Json | undefined) => {
    if (!other) return null;
    const c = commonStep([r.verdict.result, other]);
    const [a, b] = c?.steps ?? [];
    return c && a?.serverUsPerPacket && b?.serverUsPerPacket
      ? {
          calls: c.calls,
          native: a.serverUsPerPacket,
          other: b.serverUsPerPacket,
          ratio: b.serverUsPerPacket / a.serverUsPerPacket,
        }
      : null;
  };
  const jsSame = sameLoad(r.jsVerdict?.result);
  const peerSame = sameLoad(r.rtpengineVerdict?.result);
  const busiest = native.perCore && js.perCore ? native.perCore / js.perCore : null;
  const jsRatio = busiest !== null && jsSame ? Math.min(busiest, jsSame.ratio) : (busiest ?? jsSame?.ratio ?? null);
  rows.push([
    "Relayed 1:1 calls per core within loss < 0.1% and added p99 < 10 ms: at least 3 times the JS fast plane",
    `per core by CPU: native ${native.perCore ?? "–"} (${n(native.us)} µs per forwarded packet), JS ${js.perCore ?? "–"} ` +
      `(${n(js.us)} µs): **${ratio(native.perCore, js.perCore)} times**` +
      (jsSame
        ? `; at the same load (${jsSame.calls} calls) ${n(jsSame.native)} against ${n(jsSame.other)} µs: **${n(jsSame.ratio, 1)} times**`
        : "") +
      `; within the limits: ${bound}, JS ${r.jsVerdict?.result.capacityCalls ?? "–"}`,
    yes(jsRatio === null ? null : jsRatio >= 3),
  ]);
  const peerBusiest = native.perCore && peer.perCore ? native.perCore / peer.perCore : null;
  const peerRatio =
    peerBusiest !== null && peerSame ? Math.min(peerBusiest, peerSame.ratio) : (peerBusiest ?? peerSame?.ratio ?? null);
  rows.push([
    "... and above rtpengine's userspace relay",
    r.rtpengineVerdict
      ? `per core by CPU: rtpengine ${peer.perCore} (${n(peer.us)} µs per forwarded packet): native **${ratio(native.perCore, peer.perCore)} times**` +
        (peerSame
          ? `; at the same load (${peerSame.calls} calls) ${n(peerSame.native)} against ${n(peerSame.other)} µs: **${n(peerSame.ratio, 1)} times**; `
          : "; ") +
        `within the limits rtpengine passed ${r.rtpengineVerdict.result.capacityCalls}`
      : "rtpengine not measured in this run",
    yes(
      peerRatio === null
        ? null
        : peerRatio > 1 && r.verdict.result.capacityCalls > r.rtpengineVerdict.result.capacityCalls,
    ),
  ]);
  // Conference fan-out: 3 speakers, the largest step both planes ran.
  const three = (c: Json | undefined) => ((c?.result.ramps ?? []) as Json[]).find((x) => x.speakers === 3);
  const cn = three(r.conference);
  const cj = three(r.conferenceJs);
  if (cn && cj) {
    // The largest load both planes ran without loss (several conferences of 64 at once, when run).
    const size = (s: Json) => (s.conferences ?? 1) * 1000 + s.listeners;
    const clean = (s: Json) => s.lossPct < 0.1 && s.setupFailures.length === 0;
    const common = (cn.steps as Json[])
      .filter((s) => clean(s) && (cj.steps as Json[]).some((t) => size(t) === size(s) && clean(t)))
      .sort((a, b) => a.packetsOutPerSecond - b.packetsOutPerSecond);
    const big = common.at(-1);
    const bigJs = big ? (cj.steps as Json[]).find((t) => size(t) === size(big)) : undefined;
    const f = big && bigJs ? bigJs.serverUsPerPacketOut / big.serverUsPerPacketOut : null;
    const what = (s: Json) =>
      `${(s.conferences ?? 1) > 1 ? `${s.conferences} conferences of ` : ""}3 speakers + ${s.listeners} listeners`;
    rows.push([
      "Conference fan-out (3 speakers): CPU per packet out at least 3 times lower than the JS plane",
      big && bigJs
        ? `${what(big)} (${big.packetsOutPerSecond} packets out/s, the most both planes ran without loss): whole server ${n(big.serverUsPerPacketOut)} µs ` +
          `per packet out on native (media thread ${n(big.mediaUsPerPacketOut, 2)}) against ${n(bigJs.serverUsPerPacketOut)} on JS: **${n(f, 1)} times lower**` +
          ` (media thread alone: ${ratio(bigJs.serverUsPerPacketOut, big.mediaUsPerPacketOut)} times)`
        : "–",
      yes(f === null ? null : f >= 3),
    ]);
  } else {
    rows.push([
      "Conference fan-out (3 speakers): at least 3 times lower than the JS plane",
      "not measured in this run",
      yes(null),
    ]);
  }
  // Scaling: one and two media threads. Contention shows at the same load per thread (two threads at
  // 2N calls against one at N: each thread forwards as many packets per 1 ms round); at the same
  // steps two threads each see half the packets per round, so the round's fixed cost (epoll, the
  // io_uring submissions, the sleep) is spread over fewer packets, which is not contention.
  const [one, two] = r.threads;
  if (one && two) {
    const lines: string[] = [];
    const pairs: string[] = [];
    let clean = true;
    let worst = 0;
    const steps1 = one.verdict.result.steps as Json[];
    const per = (s: Json) => (s.mediaThreadsPct ?? []).map((p: number) => n(p)).join(" + ");
    for (const s2 of two.verdict.result.steps as Json[]) {
      const s1 = steps1.find((s) => s.calls === s2.calls);
      if (s1) {
        lines.push(
          `${s2.calls} calls: 1 thread ${per(s1)}% (${n(s1.mediaUsPerPacket)} µs/packet, loss ${n(s1.lossPct, 3)}%, added p99 ${n(s1.addedP99, 1)} ms); ` +
            `2 threads ${per(s2)}% (${n(s2.mediaUsPerPacket)} µs/packet, loss ${n(s2.lossPct, 3)}%, added p99 ${n(s2.addedP99, 1)} ms)`,
        );
        if (s2.lossPct >= 0.1 && s2.lossPct > s1.lossPct) clean = false;
      }
      const half = steps1.find((s) => s.calls * 2 === s2.calls);
      if (half?.mediaUsPerPacket && s2.mediaUsPerPacket) {
        const ratio = s2.mediaUsPerPacket / half.mediaUsPerPacket;
        worst = Math.max(worst, ratio);
        pairs.push(
          `2 threads at ${s2.calls} calls ${n(s2.mediaUsPerPacket)} µs against 1 thread at ${half.calls} ${n(half.mediaUsPerPacket)} µs (${n(ratio, 2)} times)`,
        );
      }
    }
    rows.push([
      "Scaling: per-thread cost with 1 and 2 media threads; two threads add no loss or contention",
      `${lines.join("; ")}. At the same load per thread, media threads' CPU per packet: ${pairs.join("; ") || "no pair of steps"}; at most ${n(worst, 2)} times one thread's`,
      yes(clean && worst > 0 && worst <= 1.25),
    ]);
  } else {
    rows.push(["Scaling: 1 and 2 media threads", "not measured in this run", yes(null)]);
  }
  // Memory per live leg: RSS after a full GC against calls (2 legs and 2 connected users per call).
  const idle = r.signaling?.result.memory;
  const leg = (run: Json | undefined) => legMemory(run);
  const mn = leg(r.relay);
  const mj = leg(r.relayJs);
  rows.push([
    "Memory per live leg and per idle connected user stated",
    `per live leg (its share of a call's RSS after a full GC, its user's connection included): native ${n(mn?.kibPerLeg, 0)} KiB, ` +
      `JS ${n(mj?.kibPerLeg, 0)} KiB (fit over ${mn?.steps ?? 0} and ${mj?.steps ?? 0} steps)` +
      (idle
        ? `; per idle connected user ${n(idle.rssKiBPerUser)} KiB RSS (${n(idle.heapKiBPerUser)} KiB JS heap), so the leg itself about ` +
          `${n(mn ? mn.kibPerLeg - idle.rssKiBPerUser : null, 0)} KiB native, ${n(mj ? mj.kibPerLeg - idle.rssKiBPerUser : null, 0)} KiB JS`
        : ""),
    yes(mn && idle ? true : null),
  ]);
  return table(["Goal (issue: native multi-core data plane)", "Measured in this run", "Verdict"], rows);
}

/** RSS after a full GC against calls (least squares over a ramp's steps without loss): KiB per leg. */
export function legMemory(run: Json | undefined): { kibPerLeg: number; steps: number } | null {
  const points = ((run?.result.steps ?? []) as Json[])
    .filter((s) => s.serverMemoryAfterGc && s.lossPct < 0.1)
    .map((s) => [s.calls as number, s.serverMemoryAfterGc.rssMiB as number]);
  if (points.length < 2) return null;
  const mx = points.reduce((a, [x]) => a + x!, 0) / points.length;
  const my = points.reduce((a, [, y]) => a + y!, 0) / points.length;
  const sxx = points.reduce((a, [x]) => a + (x! - mx) ** 2, 0);
  if (!(sxx > 0)) return null;
  const slope = points.reduce((a, [x, y]) => a + (x! - mx) * (y! - my), 0) / sxx;
  return { kibPerLeg: (slope * 1024) / 2, steps: points.length };
}

/** What a 16-core host should carry, from this run's per-packet costs (an estimate on paper). */
function sixteenCoresBlock(verdict: Json, threads: { run: Json; verdict: Json }[]): string {
  const v = verdict.result;
  // Every step without loss, the generator on schedule or not: the event loop's work is per leg
  // (polling the native counters ten times a second, ICE consent, RTCP), not per packet.
  const steps = (v.steps as Json[]).filter((s) => s.lossPct < 0.1 && s.serverLoopCpuPct !== null);
  // The event loop's CPU against calls: what the control plane (werift's consent checks, RTCP,
  // statistics) costs per call; it stays on one thread whatever --media-threads says.
  const loop = fitLine(steps.map((s) => [s.calls, s.serverLoopCpuPct]));
  const media = v.averageCeiling?.mediaUsPerPacket ?? null;
  const mediaPerCore = callsPerCore(media);
  const loopCeiling = loop ? Math.floor((100 - loop.intercept) / loop.slope) : null;
  const byMedia = mediaPerCore ? 15 * mediaPerCore : null;
  const estimate = byMedia && loopCeiling ? Math.min(byMedia, loopCeiling) : (byMedia ?? loopCeiling);
  const two = threads[1]?.verdict.result.steps.at(-1);
  return [
    `- Media threads: ${n(media)} µs of a media thread per forwarded packet at ${v.averageCeiling?.calls ?? "–"} calls, so ` +
      `${mediaPerCore ?? "–"} calls per media thread's core; 15 media threads (one core left to the event loop): ${byMedia ?? "–"} calls.`,
    `- Event loop (control plane, one thread whatever \`--media-threads\` says): ${loop ? n(loop.slope * 1e4, 0) : "–"} µs of CPU per second ` +
      `per call (fit over the native ramp's steps without loss: its work is per leg, not per packet), so it fills its core at about ${loopCeiling ?? "–"} calls.`,
    `- **A 16-core host: about ${estimate ?? "–"} calls** (the smaller of the two), before the kernel's network processing ` +
      "(here charged to the threads that send, on loopback; on a real NIC partly to interrupts and softirq on every core)" +
      (two ? `; two media threads on this machine carried ${two.calls} calls with loss ${n(two.lossPct, 3)}%.` : "."),
  ].join("\n");
}

function fitLine(points: [number, number][]): { slope: number; intercept: number } | null {
  if (points.length < 2) return null;
  const mx = points.reduce((a, [x]) => a + x, 0) / points.length;
  const my = points.reduce((a, [, y]) => a + y, 0) / points.length;
  const sxx = points.reduce((a, [x]) => a + (x - mx) ** 2, 0);
  if (!(sxx > 0)) return null;
  const slope = points.reduce((a, [x, y]) => a + (x - mx) * (y - my), 0) / sxx;
  return slope > 0 ? { slope, intercept: my - slope * mx } : null;
}

function relayBlock(relay: Json, verdict: Json): string {
  const steps = relay.result.steps as Json[];
  const verdicts = new Map((verdict.result.steps as Json[]).map((s) => [s.calls, s]));
  const media = steps.some((s) => s.cpu.mediaThreadsPct);
  const rows = table(
    [
      "Calls",
      "Packets/s sent by the generator (% of nominal)",
      "Server CPU (% of 1 core): all threads / event loop",
      "µs CPU / fwd packet",
      ...(media ? ["Media threads: % of 1 core (µs / fwd packet)"] : []),
      "Generator CPU (% of 1 core) (engine µs per packet sent / received)",
      "Loss %",
      "Delay via server p50 / p99 (ms)",
      "Direct baseline p50 / p99",
      "Added p50 / p99",
      "Server GC pauses (count, max ms)",
      "Signaling RTT p99 (ms)",
      "Server core busy % (/proc/stat)",
      "Pass",
    ],
    steps.map((s) => {
      const v = verdicts.get(s.calls);
      return [
        s.calls,
        `${v?.offeredPerSecond ?? "–"} (${n(v?.offeredPct, 0)}%)`,
        `${n(s.cpu.serverPct)} / ${n(s.cpu.serverLoopPct)}`,
        n(v?.serverUsPerPacket, 1),
        ...(media
          ? [
              s.cpu.mediaThreadsPct
                ? `${(s.cpu.mediaThreadsPct as number[]).map((p) => n(p)).join(" + ")} (${n(v?.mediaUsPerPacket)})`
                : "–",
            ]
          : []),
        s.engine
          ? `${n(s.cpu.generatorsPct)} (${n(s.engine.sendUs, 1)} / ${n(s.engine.receiveUs, 1)})`
          : n(s.cpu.generatorsPct),
        n(s.lossPct, 3),
        `${n(s.delay.p50, 2)} / ${n(s.delay.p99, 2)}`,
        `${n(v?.baselineP50, 2)} / ${n(v?.baselineP99, 2)}`,
        `${n(v?.addedP50, 2)} / ${n(v?.addedP99, 2)}`,
        s.serverGc ? `${s.serverGc.count}, ${n(s.serverGc.maxMs)}` : "–",
        n(s.signalingRtt?.p99, 1),
        n(s.cpu.serverCoreBusyPct, 0),
        v?.pass ? "yes" : "**no**",
      ];
    }),
  );
  const threads = relay.result.mediaThreads as string[] | undefined;
  const where = relay.result.serverCores ? `server on core(s) ${relay.result.serverCores}` : "server unpinned";
  return `${rows}\n\n${relay.result.dataPlane} data plane, ${where}, ${
    threads?.length ? `media threads: ${threads.join(", ")}` : "no media threads"
  }.`;
}

// ---------------------------------------------------------------- peer relay: rtpengine

/** rtpengine's ramp: the relay table's measurements, for a process with no event loop, GC or signaling. */
function rtpengineBlock(run: Json, verdict: Json | undefined): string {
  const r = run.result;
  if (r.skipped) return `Not measured in this run: ${r.skipped}.`;
  const verdicts = new Map(((verdict?.result.steps ?? []) as Json[]).map((s) => [s.calls, s]));
  return [
    table(
      [
        "Calls",
        "Packets/s sent by the generator (% of nominal)",
        "rtpengine CPU (% of 1 core, all threads)",
        "µs CPU / fwd packet",
        "Generator CPU (% of 1 core) (engine µs per packet sent / received)",
        "Loss %",
        "Delay via rtpengine p50 / p99 (ms)",
        "Direct baseline p50 / p99",
        "Added p50 / p99",
        "rtpengine RSS (MiB)",
        "Relay core busy % (/proc/stat)",
        "Setups failed",
        "Pass",
      ],
      (r.steps as Json[]).map((s) => {
        const v = verdicts.get(s.calls);
        return [
          s.calls,
          `${v?.offeredPerSecond ?? "–"} (${n(v?.offeredPct, 0)}%)`,
          n(s.cpu.serverPct),
          n(v?.serverUsPerPacket, 1),
          s.engine
            ? `${n(s.cpu.generatorsPct)} (${n(s.engine.sendUs, 1)} / ${n(s.engine.receiveUs, 1)})`
            : n(s.cpu.generatorsPct),
          n(s.lossPct, 3),
          `${n(s.delay.p50, 2)} / ${n(s.delay.p99, 2)}`,
          `${n(v?.baselineP50, 2)} / ${n(v?.baselineP99, 2)}`,
          `${n(v?.addedP50, 2)} / ${n(v?.addedP99, 2)}`,
          n(s.serverRssMiB, 1),
          n(s.cpu.serverCoreBusyPct, 0),
          s.setupFailures.length,
          v?.pass ? "yes" : "**no**",
        ];
      }),
    ),
    "",
    `rtpengine ${r.peer.version}, ${r.peer.threads.length} threads in all (${r.peer.threads.join(", ")}), ` +
      `started as \`${r.peer.command}\`.`,
  ].join("\n");
}

/** Generator CPU per packet (sent and received) from a straight-line fit over the baseline steps. */
export function baselineFit(baseline: Json): { usPerPacket: number | null } {
  const steps = baseline.result.steps as Json[];
  if (steps.length < 2) return { usPerPacket: null };
  const mx = steps.reduce((a, s) => a + s.calls, 0) / steps.length;
  const my = steps.reduce((a, s) => a + s.cpu.generatorsPct, 0) / steps.length;
  const slope =
    steps.reduce((a, s) => a + (s.calls - mx) * (s.cpu.generatorsPct - my), 0) /
    steps.reduce((a, s) => a + (s.calls - mx) ** 2, 0);
  // A pair sends 100 packets/s and receives 100: slope (% of a core per pair) x 100 = µs per packet sent and received.
  return { usPerPacket: slope > 0 ? Math.round(slope * 1000) / 10 : null };
}

function baselineBlock(baseline: Json): string {
  const fit = baselineFit(baseline);
  return [
    table(
      ["Direct pairs", "Generators CPU (% of 1 core)", "Loss %", "Delay p50 / p99 (ms)", "Send lateness p99 (ms)"],
      (baseline.result.steps as Json[]).map((s) => [
        s.calls,
        n(s.cpu.generatorsPct),
        n(s.lossPct, 3),
        `${n(s.delay.p50, 2)} / ${n(s.delay.p99, 2)}`,
        n(s.lateness.p99, 2),
      ]),
    ),
    "",
    `Fit: the generators spend ${n(fit.usPerPacket)} µs of CPU per packet sent and received (send: SRTP protect + UDP ` +
      "send; receive: UDP receive + SRTP authenticate and decrypt), plus a fixed cost for their pacing and werift's idle " +
      "peer connections (STUN consent checks).",
  ].join("\n");
}

function conferenceBlock(conference: Json): string {
  const rows: (string | number)[][] = [];
  for (const ramp of conference.result.ramps as Json[]) {
    for (const s of ramp.steps as Json[]) {
      rows.push([
        s.conferences ?? 1,
        s.speakers,
        s.listeners,
        s.packetsOutPerSecond,
        n(s.cpu.serverPct),
        n(s.serverUsPerPacketOut, 1),
        s.mediaUsPerPacketOut == null ? "–" : `${n(s.cpu.mediaThreadsPct?.[0])} (${n(s.mediaUsPerPacketOut, 2)})`,
        n(s.cpu.generatorsPct),
        n(s.lossPct, 3),
        `${n(s.delay.p50, 2)} / ${n(s.delay.p99, 2)}`,
        s.setupFailures.length,
      ]);
    }
  }
  return table(
    [
      "Conferences",
      "Speakers K",
      "Listeners N",
      "Packets out/s",
      "Server CPU (% of 1 core)",
      "µs CPU / packet out",
      "Media thread: % of 1 core (µs / packet out)",
      "Generator CPU",
      "Loss %",
      "Delay p50 / p99 (ms)",
      "Joins failed",
    ],
    rows,
  );
}

function setupBlock(setup: Json): string {
  const labels: [string, string][] = [
    ["inviteResponseMs", "call.invite -> its response (caller)"],
    ["inviteToRingingMs", "invite -> ringing (call.incoming at the callee)"],
    ["callerLegMs", "caller's media leg: offer -> ICE + DTLS connected"],
    ["calleeLegMs", "callee's media leg: offer -> connected"],
    ["answerResponseMs", "call.answer -> its response"],
    ["answerToAudioCalleeMs", "answer -> first audio packet at the callee"],
    ["answerToAudioCallerMs", "answer -> first audio packet at the caller"],
  ];
  const parts: string[] = [];
  for (const [mode, title] of [
    ["connected", "Answered once the callee's media is up (a person picking up a ringing phone)"],
    ["ring", "Answered the moment it rings (an auto-answering bot: ICE and DTLS after the answer)"],
  ] as const) {
    const m = setup.result.modes[mode];
    if (!m) continue;
    parts.push(
      `**${title}**: ${m.calls} calls, ${m.concurrentCalls} at a time, ${m.failures.length} failed; ` +
        `server CPU ${n(m.serverCpuMsPerCall)} ms per call (set up and torn down).\n`,
    );
    parts.push(
      table(
        ["Interval (ms)", "p50", "p95", "p99", "max"],
        labels
          .filter(([key]) => m.timings[key])
          .map(([key, label]) => {
            const t = m.timings[key];
            return [label, n(t.p50), n(t.p95), n(t.p99), n(t.max)];
          }),
      ),
    );
    parts.push("");
  }
  return parts.join("\n").trim();
}

function signalingBlock(sig: Json): string {
  const r = sig.result;
  const f = r.presenceFanout.median;
  return table(
    ["Measure", "Result"],
    [
      ["Idle users connected (WebSocket + hello + auth.resume)", r.idleUsers],
      [
        "Login by session token (auth.resume) while all of them connect",
        `${n(r.resume.perSecond, 0)}/s (${r.resume.concurrency} at a time; p50 ${n(r.resume.latency.p50)} ms, p99 ${n(r.resume.latency.p99)} ms; server ${n(r.resume.serverCpuPct, 0)}% CPU)`,
      ],
      [
        "Memory per idle connected user",
        `${n(r.memory.rssKiBPerUser)} KiB RSS, of which ${n(r.memory.heapKiBPerUser)} KiB JS heap after GC (${r.memory.before.rssMiB} -> ${r.memory.after.rssMiB} MiB RSS)`,
      ],
      ["Server CPU with all of them idle (heartbeats)", `${n(r.idleCpuPct, 2)}% of a core`],
      [
        `Presence: one more user logs in; "online" reaches all ${f.receivers} users`,
        `p50 ${n(f.p50)} ms, p99 ${n(f.p99)} ms, last ${n(f.max)} ms (median of ${r.presenceFanout.trials.length} trials); ` +
          `the login's own reply took ${n(f.loginMs)} ms: it comes after the broadcast`,
      ],
      [
        `Request round trip (account.get) at ${r.requestRtt.requestsPerSecond}/s from ${r.requestRtt.clients} connections`,
        `p50 ${n(r.requestRtt.p50, 2)} ms, p99 ${n(r.requestRtt.p99, 2)} ms (server ${n(r.requestRtt.serverCpuPct)}% CPU)`,
      ],
      [
        "Login with password (scrypt N=2^17, 0.3 s by design)",
        `${n(r.passwordLogin.perSecond)}/s with ${r.passwordLogin.concurrency} at a time; p50 ${n(r.passwordLogin.latency.p50, 0)} ms, p99 ${n(r.passwordLogin.latency.p99, 0)} ms`,
      ],
    ],
  );
}

function loginFloodBlock(flood: Json): string {
  const r = flood.result;
  const [quiet, flooded] = r.windows as Json[];
  const row = (w: Json, label: string) => [
    label,
    `${n(w.lossPct, 3)}%`,
    `${n(w.delay.p50, 2)} ms`,
    `${n(w.delay.p99, 2)} ms`,
    `${n(w.serverCpuPct, 0)}% (event loop ${n(w.serverLoopCpuPct, 0)}%)`,
    `${n(w.gcMaxMs, 1)} ms`,
  ];
  const f = r.flood ?? { attempts: 0, replies: {}, connections: 0 };
  const seconds = r.windowSeconds + 4;
  const replies = Object.entries(f.replies as Record<string, number>)
    .sort((a, b) => b[1] - a[1])
    .map(([code, count]) => `${code} ${count}`)
    .join(", ");
  return [
    `Measured ${flood.date ?? ""} on ${flood.machine?.cores ?? "?"} cores (${flood.machine?.cpuModel ?? "?"}), ` +
      `\`${flood.command ?? "npm run bench"}\`, ${r.calls} calls, ${r.windowSeconds} s windows, one after the other in the same run.`,
    "",
    table(
      ["Window", "Loss", "Delay p50", "Delay p99", "Server CPU", "Longest GC pause"],
      [row(quiet, "Quiet"), row(flooded, "Login flood")],
    ),
    "",
    `The flood: ${f.attempts} bad logins in ${seconds} s (${n(f.attempts / seconds, 0)}/s) over ${f.connections} ` +
      `connections from ${Math.min(250, f.connections)} addresses, ${r.concurrency} at a time; replies: ${replies}. ` +
      `They cost ${r.auditRowsForFailedLogins} audit rows in all. p99 with the flood / without: ${r.p99Ratio ?? "n/a"}.`,
  ].join("\n");
}

/** Self time summed into a few groups: werift's JavaScript, UDP, crypto, GC, Parley, the rest. */
function groups(areas: Json[]): string {
  const total = (test: (area: string) => boolean) =>
    areas.filter((a) => test(a.area)).reduce((sum, a) => sum + a.selfPct, 0);
  const parts: [string, number][] = [
    ["werift's JavaScript (all its layers)", total((a) => a.startsWith("werift"))],
    ["Node's UDP layer and system calls", total((a) => a.startsWith("Node dgram"))],
    ["V8 garbage collection on the main thread", total((a) => a.startsWith("V8 garbage"))],
    ["node:crypto", total((a) => a.startsWith("Node crypto"))],
    ["Parley's own code (its fast data plane included)", total((a) => a.startsWith("Parley"))],
  ];
  const rest = 100 - parts.reduce((sum, [, pct]) => sum + pct, 0);
  return [...parts, ["everything else (Node internals, native, other dependencies)", rest] as [string, number]]
    .map(([name, pct]) => `${name} ${n(pct, 0)}%`)
    .join(", ");
}

function profileBlock(profile: Json): string {
  const r = profile.result;
  const s = r.summary;
  const parts = [
    `${r.calls} calls for ${r.seconds} s under \`--cpu-prof\` (server at ${n(r.window.cpu.serverPct)}% of its core with the profiler on; ` +
      `samples from the measurement window only, ${n(s.busyMs / 1000)} s of CPU).\n`,
    `In short: ${groups(s.areas as Json[])}.\n`,
    "Self time by area:\n",
    table(
      ["Area", "% of CPU"],
      (s.areas as Json[]).filter((a) => a.selfPct >= 0.5).map((a) => [a.area, n(a.selfPct)]),
    ),
    "\nTop functions by self time:\n",
    table(
      ["Function", "Where", "Self %", "Incl. %"],
      (s.topSelf as Json[])
        .slice(0, 20)
        .map((f) => [`\`${f.function}\``, f.location || "(native)", n(f.selfPct), n(f.totalPct)]),
    ),
    "\nThe packet path, inclusive time (a stage and everything it calls; stages nest, so these overlap; " +
      "werift's send is asynchronous, so the UDP send runs on its own stack):\n",
    table(
      ["Stage", "% of CPU"],
      (s.hotPaths as Json[]).map((h) => [h.function, n(h.totalPct)]),
    ),
  ];
  return parts.join("\n");
}

function replaceBlock(doc: string, name: string, body: string): string {
  const start = `<!-- bench:${name} -->`;
  const end = `<!-- /bench:${name} -->`;
  const i = doc.indexOf(start);
  const j = doc.indexOf(end);
  if (i < 0 || j < i) return doc;
  return `${doc.slice(0, i + start.length)}\n${body}\n${doc.slice(j)}`;
}

function relayChart(relay: Json, loop: Json | undefined, verdict: Json): string {
  const steps = relay.result.steps as Json[];
  const loopSteps = (loop?.result.steps ?? []) as Json[];
  const xs = [...new Set([...steps, ...loopSteps].map((s) => s.calls as number))].sort((a, b) => a - b);
  const at = (list: Json[], pick: (s: Json) => number | null) =>
    xs.map((x) => {
      const s = list.find((t) => t.calls === x);
      return s ? pick(s) : null;
    });
  const maxLoss = Math.max(1, ...[...steps, ...loopSteps].map((s) => s.lossPct));
  const left = [
    { name: "server CPU, whole server on 1 core", values: at(steps, (s) => s.cpu.serverPct), color: "#1f77b4" },
    { name: "load generators CPU", values: at(steps, (s) => s.cpu.generatorsPct), color: "#7f7f7f", dashed: true },
  ];
  const right = [{ name: "loss, whole server on 1 core", values: at(steps, (s) => s.lossPct), color: "#d62728" }];
  if (loop) {
    left.splice(1, 0, {
      name: "server CPU (all threads), event loop on 1 core",
      values: at(loopSteps, (s) => s.cpu.serverPct),
      color: "#9467bd",
    });
    right.push({
      name: "loss, event loop on 1 core",
      values: at(loopSteps, (s) => s.lossPct),
      color: "#ff7f0e",
      dashed: true,
    } as (typeof right)[number]);
  }
  return lineChart({
    title: "1:1 calls through one Parley server: CPU and packet loss",
    x: { label: "concurrent 1:1 calls (50 packets/s each way)", values: xs },
    left: {
      label: "CPU, % of one core",
      max: Math.max(100, ...left.flatMap((l) => l.values.filter((v): v is number => v !== null))),
      series: left,
    },
    right: {
      label: "packet loss, %",
      max: maxLoss,
      series: right,
      reference: { value: 0.1, label: "0.1% loss limit" },
    },
    marker: verdict.result.capacityCalls
      ? { x: verdict.result.capacityCalls, label: `capacity (1 core): ${verdict.result.capacityCalls} calls` }
      : undefined,
  });
}

function delayChart(verdict: Json, loopVerdict: Json | undefined): string {
  const steps = verdict.result.steps as Json[];
  const loopSteps = (loopVerdict?.result.steps ?? []) as Json[];
  const xs = [...new Set([...steps, ...loopSteps].map((s) => s.calls as number))].sort((a, b) => a - b);
  const at = (list: Json[], pick: (s: Json) => number | null) =>
    xs.map((x) => {
      const s = list.find((t) => t.calls === x);
      return s ? pick(s) : null;
    });
  const series = [
    { name: "added p99, whole server on 1 core", values: at(steps, (s) => s.addedP99), color: "#d62728" },
    { name: "added p50, whole server on 1 core", values: at(steps, (s) => s.addedP50), color: "#1f77b4" },
  ];
  if (loopVerdict) {
    series.push({
      name: "added p99, event loop on 1 core",
      values: at(loopSteps, (s) => s.addedP99),
      color: "#ff7f0e",
    });
  }
  const all = series.flatMap((s) => s.values.filter((v): v is number => v !== null && Number.isFinite(v)));
  return lineChart({
    title: "Delay the server adds (via server minus direct baseline), capped at 100 ms",
    x: { label: "concurrent 1:1 calls", values: xs },
    left: {
      label: "added delay, ms",
      max: Math.min(100, Math.max(12, ...all)),
      series,
      reference: { value: 10, label: "10 ms p99 limit" },
    },
  });
}

function conferenceChart(conference: Json): string {
  const ramp = (conference.result.ramps as Json[])[0];
  const steps = ramp.steps as Json[];
  return lineChart({
    title: `Conference: ${ramp.speakers} speaker(s) heard by N listeners through the server`,
    x: { label: "listeners N", values: steps.map((s) => s.listeners) },
    left: {
      label: "server CPU, % of one core",
      max: Math.max(10, ...steps.map((s) => s.cpu.serverPct ?? 0)) * 1.2,
      series: [{ name: "server CPU", values: steps.map((s) => s.cpu.serverPct), color: "#1f77b4" }],
    },
    right: {
      label: "packet loss, %",
      max: Math.max(1, ...steps.map((s) => s.lossPct)),
      series: [{ name: "loss", values: steps.map((s) => s.lossPct), color: "#d62728" }],
      reference: { value: 0.1, label: "0.1% loss limit" },
    },
  });
}

export function writeDocs(resultsDir: string): void {
  const relay = read(resultsDir, "relay");
  const loop = read(resultsDir, "relay-loop");
  const werift = read(resultsDir, "relay-werift");
  const relayJs = read(resultsDir, "relay-js");
  const syscalls = read(resultsDir, "relay-syscalls");
  const threads = ["relay-threads-1", "relay-threads-2"].flatMap((name) => {
    const run = read(resultsDir, name);
    return run ? [{ name, run }] : [];
  });
  const rtpengine = read(resultsDir, "relay-rtpengine");
  const baseline = read(resultsDir, "baseline");
  // Verdicts are recomputed from the measurements, so the page always follows the current rules.
  const verdictOf = (ramp: Json) =>
    ramp && baseline ? { result: relayVerdict(ramp.result, baseline.result) } : undefined;
  const verdict = verdictOf(relay);
  const loopVerdict = verdictOf(loop);
  const weriftVerdict = verdictOf(werift);
  const jsVerdict = verdictOf(relayJs);
  const threadVerdicts = threads.flatMap(({ name, run }) => {
    const verdict = verdictOf(run);
    return verdict ? [{ name, run, verdict }] : [];
  });
  const rtpengineVerdict = rtpengine?.result.skipped ? undefined : verdictOf(rtpengine);
  const conference = read(resultsDir, "conference");
  const conferenceJs = read(resultsDir, "conference-js");
  const setup = read(resultsDir, "setup");
  const signaling = read(resultsDir, "signaling");
  const profile = read(resultsDir, "profile");
  const loginFlood = read(resultsDir, "login-flood");
  if (!fs.existsSync(DOC)) throw new Error(`${DOC} is missing`);
  let doc = fs.readFileSync(DOC, "utf8");
  const any = relay ?? conference ?? setup ?? signaling ?? profile;
  if (any) doc = replaceBlock(doc, "env", envBlock(any, read(resultsDir, "run")));
  const peer = rtpengine ? { run: rtpengine, verdict: rtpengineVerdict } : undefined;
  if (verdict) {
    doc = replaceBlock(
      doc,
      "headline",
      headlineBlock(verdict, loopVerdict, jsVerdict, weriftVerdict, peer, verdictOf(syscalls)),
    );
    doc = replaceBlock(
      doc,
      "goals",
      goalsBlock({
        verdict,
        jsVerdict,
        rtpengineVerdict,
        relay,
        relayJs,
        conference,
        conferenceJs,
        threads: threadVerdicts,
        signaling: read(resultsDir, "signaling"),
      }),
    );
    doc = replaceBlock(doc, "sixteen-cores", sixteenCoresBlock(verdict, threadVerdicts));
  }
  if (relayJs && jsVerdict) doc = replaceBlock(doc, "relay-js", relayBlock(relayJs, jsVerdict));
  for (const t of threadVerdicts) {
    doc = replaceBlock(doc, t.name, relayBlock(t.run, t.verdict));
  }
  if (relay && verdict) {
    doc = replaceBlock(doc, "relay", relayBlock(relay, verdict));
    fs.writeFileSync(path.join(ROOT, "docs/perf-relay.svg"), relayChart(relay, loop, verdict));
    fs.writeFileSync(path.join(ROOT, "docs/perf-delay.svg"), delayChart(verdict, loopVerdict));
  }
  if (loop && loopVerdict) doc = replaceBlock(doc, "relay-loop", relayBlock(loop, loopVerdict));
  if (werift && weriftVerdict) doc = replaceBlock(doc, "relay-werift", relayBlock(werift, weriftVerdict));
  if (rtpengine) doc = replaceBlock(doc, "relay-rtpengine", rtpengineBlock(rtpengine, rtpengineVerdict));
  if (baseline) doc = replaceBlock(doc, "baseline", baselineBlock(baseline));
  if (conference) {
    doc = replaceBlock(doc, "conference", conferenceBlock(conference));
    if (conferenceJs) doc = replaceBlock(doc, "conference-js", conferenceBlock(conferenceJs));
    fs.writeFileSync(path.join(ROOT, "docs/perf-conference.svg"), conferenceChart(conference));
  }
  if (setup) doc = replaceBlock(doc, "setup", setupBlock(setup));
  if (signaling) doc = replaceBlock(doc, "signaling", signalingBlock(signaling));
  if (profile) doc = replaceBlock(doc, "profile", profileBlock(profile));
  if (loginFlood) doc = replaceBlock(doc, "login-flood", loginFloodBlock(loginFlood));
  fs.writeFileSync(DOC, doc);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  writeDocs(process.argv[2] ? path.resolve(process.argv[2]) : path.join(ROOT, "bench/results"));
  console.log("updated docs/performance.md and docs/perf-*.svg");
}
