/**
 * Parley benchmarks: `npm run bench` (full, updates docs/performance.md and its plots) and
 * `npm run bench:quick` (smoke check, under two minutes, results in bench/results/quick/).
 *
 *   node --import tsx bench/run.ts [--quick] [--only relay,threads,conference,setup,signaling,signaling-postgres,profile,login-flood,one-way-hunt,cluster,cluster-calls]
 *                                  [--generators N] [--no-docs] [--no-build] [--peers rtpengine|none]
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { type Context, encodeFrames } from "./lib/cluster.js";
import { buildEngine } from "./lib/native-engine.js";
import { environment, type PinMode, pinningPlan, pinSelf, ROOT } from "./lib/proc.js";
import { writeDocs } from "./report.js";
import { type ClusterCallsResult, clusterCallsScenario } from "./scenarios/cluster-calls.js";
import { clusterPresenceScenario } from "./scenarios/cluster-presence.js";
import { conferenceScenario } from "./scenarios/conference.js";
import { loginFloodScenario } from "./scenarios/login-flood.js";
import { huntLines, oneWayHuntScenario, writeOneWayHuntDocs } from "./scenarios/one-way-hunt.js";
import { profileScenario } from "./scenarios/profile.js";
import {
  type BaselineResult,
  baselineScenario,
  type RelayResult,
  relayScenario,
  relayVerdict,
  syscallsSteps,
  threadsSteps,
  weriftSteps,
} from "./scenarios/relay.js";
import { rtpengineRelayScenario } from "./scenarios/relay-rtpengine.js";
import { setupScenario } from "./scenarios/setup.js";
import { signalingOnBothDatabases, signalingScenario } from "./scenarios/signaling.js";

const SCENARIOS = [
  "relay",
  "threads",
  "conference",
  "setup",
  "signaling",
  "signaling-postgres",
  "profile",
  "login-flood",
  "one-way-hunt",
  "cluster",
  "cluster-calls",
] as const;
type Scenario = (typeof SCENARIOS)[number];

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    only: { type: "string" },
    generators: { type: "string" },
    "no-docs": { type: "boolean", default: false },
    "no-build": { type: "boolean", default: false },
    // Peer relays ramped in the relay scenario with the same load generator (skipped, with the
    // reason in their result, where not installed); "none" leaves them out.
    peers: { type: "string", default: "rtpengine" },
  },
});

const quick = values.quick === true;
const only = new Set<Scenario>(
  values.only ? (values.only.split(",").map((s) => s.trim()) as Scenario[]) : [...SCENARIOS],
);
for (const name of only) if (!SCENARIOS.includes(name)) throw new Error(`unknown scenario '${name}'`);
const peers = values.peers === "none" ? [] : (values.peers ?? "").split(",").map((s) => s.trim());
for (const peer of peers) if (peer !== "rtpengine") throw new Error(`unknown peer relay '${peer}'`);
const started = performance.now();
// The machine is shared: sample its 1-minute load average through the run, to report the conditions.
const loadSamples: number[] = [os.loadavg()[0]!];
const loadSampler = setInterval(() => loadSamples.push(os.loadavg()[0]!), 5000);
loadSampler.unref();
const resultsDir = path.join(ROOT, "bench/results", quick ? "quick" : "");
fs.mkdirSync(resultsDir, { recursive: true });
// The bench's own knobs and the server's data-plane switch change what is measured: record them.
const knobs = Object.entries(process.env)
  .filter(([name]) => name.startsWith("BENCH_") || name === "PARLEY_MEDIA_DATA_PLANE")
  .map(([name, value]) => `${name}=${value}`);
const commandLine = [...knobs, "node --import tsx bench/run.ts", ...process.argv.slice(2)].join(" ").trim();

function log(line: string): void {
  const t = ((performance.now() - started) / 1000).toFixed(0).padStart(4);
  console.log(`[${t}s] ${line}`);
}

if (!values["no-build"]) {
  // The server under test is the built one (packages/*/dist); make sure it matches the sources.
  log("building the server (tsc -b packages/cli)");
  const build = spawnSync("npx", ["tsc", "-b", "packages/cli"], { cwd: ROOT, stdio: "inherit" });
  if (build.status !== 0) throw new Error("the build failed; fix it or pass --no-build to bench the existing dist");
}

// The generators' data plane: the native RTP engine unless BENCH_LOADGEN=node or it cannot be built.
let engine: string | null = null;
if (process.env.BENCH_LOADGEN !== "node") {
  const built = buildEngine();
  if ("binary" in built) engine = built.binary;
  else log(`the native RTP engine is unavailable, the generators use their Node data plane: ${built.error}`);
}

const pinning = pinningPlan();
pinSelf(pinning.generators);
// The machine is shared: other work on the relay's core takes turns with the server and skews its
// delay. The bench raises its own priority (BENCH_NICE, -10 by default; 0 leaves it), which every
// process it starts inherits (servers, load generators, their engines, rtpengine), so the others'
// work runs in the time the bench leaves. Without the right to do so (not root) it runs as it is.
const nice = Number(process.env.BENCH_NICE ?? -10);
if (nice !== 0) {
  try {
    os.setPriority(process.pid, nice);
    pinning.note += `; bench processes at nice ${nice}`;
  } catch (error) {
    log(`could not set nice ${nice} (${(error as Error).message}): the bench's processes keep the default priority`);
  }
}
log(pinning.note);
const ctx: Context = {
  quick,
  pinning,
  // One generator process (with its engine) drives a ramp well past the server's limit on the native
  // data plane; on the Node one it takes three sharing the core to keep their event loops' delays low.
  generators: Math.max(1, Number(values.generators ?? (engine ? 1 : 3))),
  frames: encodeFrames(),
  engine,
  log,
};

function save(name: string, result: unknown, seconds: number): void {
  const file = path.join(resultsDir, `${name}.json`);
  const record = {
    ...environment(commandLine),
    mode: quick ? "quick" : "full",
    pinning,
    generators: ctx.generators,
    generatorDataPlane: engine ? "native" : "node",
    scenarioSeconds: Math.round(seconds),
    result,
  };
  fs.writeFileSync(file, `${JSON.stringify(record, null, 2)}\n`);
  log(`wrote ${path.relative(ROOT, file)}`);
}

async function timed<T>(name: string, run: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  log(`--- ${name}`);
  const result = await run();
  save(name, result, (performance.now() - t0) / 1000);
  return result;
}

let ceiling: number | undefined;
/** The highest step of every ramp run so far: the direct baseline goes as far. */
let maxCalls = 0;
const rampsToJudge: { name: string; ramp: Pick<RelayResult, "pinMode" | "steps"> & { dataPlane?: string } }[] = [];
if (only.has("relay")) {
  // The whole server on one core (the strict per-core figure). BENCH_RELAY_MODES=process,loop adds a
  // ramp with only its event loop on that core and V8's GC threads and libuv's pool on the others
  // (it mattered when GC stalls set the limit, on werift's RTP path; see docs/performance.md).
  const modes: PinMode[] =
    process.env.BENCH_RELAY_MODES && pinning.available
      ? (process.env.BENCH_RELAY_MODES.split(",") as PinMode[])
      : ["process"];
  const ramps: RelayResult[] = [];
  // The server's default, the native data plane (one media thread: the server sees one core).
  for (const pinMode of modes) {
    ramps.push(await timed(pinMode === "process" ? "relay" : "relay-loop", () => relayScenario(ctx, { pinMode })));
  }
  // The native plane without io_uring (one system call per socket), for what io_uring saves (full runs).
  const syscalls = quick
    ? undefined
    : await timed("relay-syscalls", () => relayScenario(ctx, { ioUring: false, steps: syscallsSteps(quick) }));
  // The JS fast plane (the fallback where the addon cannot load), same core, same steps.
  const js = await timed("relay-js", () => relayScenario(ctx, { dataPlane: "js" }));
  // The same ramp's first steps on werift's RTP path, for the comparison (full runs).
  const werift = quick
    ? undefined
    : await timed("relay-werift", () => relayScenario(ctx, { dataPlane: "werift", steps: weriftSteps(quick) }));
  // rtpengine on the same core with the same generator and steps (per core: one worker thread).
  const peer = peers.includes("rtpengine")
    ? await timed("relay-rtpengine", () => rtpengineRelayScenario(ctx))
    : undefined;
  const rtpengine = peer && !("skipped" in peer) ? peer : undefined;
  maxCalls = Math.max(
    maxCalls,
    ...[
      ...ramps,
      js,
      ...(syscalls ? [syscalls] : []),
      ...(werift ? [werift] : []),
      ...(rtpengine ? [rtpengine] : []),
    ].map((r) => r.steps.at(-1)?.calls ?? 0),
  );
  rampsToJudge.push({ name: "relay-js", ramp: js });
  if (syscalls) rampsToJudge.push({ name: "relay-syscalls", ramp: syscalls });
  if (werift) rampsToJudge.push({ name: "relay-werift", ramp: werift });
  if (rtpengine) rampsToJudge.push({ name: "relay-rtpengine", ramp: rtpengine });
  for (const ramp of ramps) rampsToJudge.push({ name: ramp.pinMode === "process" ? "relay" : "relay-loop", ramp });
}
if (only.has("threads")) {
  // Scaling: the native plane with one and then two media threads, the server on every core (on a
  // 2-core machine it shares one with the load generator), at the same steps.
  const cores = pinning.available ? `0-${os.cpus().length - 1}` : undefined;
  for (const threads of [1, 2]) {
    const ramp = await timed(`relay-threads-${threads}`, () =>
      relayScenario(ctx, { mediaThreads: threads, serverCores: cores, steps: threadsSteps(quick) }),
    );
    maxCalls = Math.max(maxCalls, ramp.steps.at(-1)?.calls ?? 0);
    rampsToJudge.push({ name: `relay-threads-${threads}`, ramp });
  }
}
if (rampsToJudge.length) {
  const baseline: BaselineResult = await timed("baseline", () => baselineScenario(ctx, maxCalls));
  for (const { name, ramp } of rampsToJudge) {
    if (name.startsWith("relay-threads") || name === "relay" || name === "relay-loop") continue;
    save(`${name}-verdict`, relayVerdict(ramp, baseline), 0);
  }
  const rtpengine = rampsToJudge.find((r) => r.name === "relay-rtpengine")?.ramp as
    | Awaited<ReturnType<typeof rtpengineRelayScenario>>
    | undefined;
  if (rtpengine && !("skipped" in rtpengine)) {
    const verdict = relayVerdict(rtpengine, baseline);
    const at = verdict.steps.find((s) => s.calls === verdict.capacityCalls);
    log(
      `relay capacity (rtpengine ${rtpengine.peer.version}, one worker thread): ${verdict.capacityCalls} calls within ` +
        `the limits (rtpengine CPU ${verdict.serverCpuPctAtCapacity}%, ${at?.serverUsPerPacket ?? "–"} µs per ` +
        `forwarded packet); CPU ceiling by average cost ${verdict.averageCeiling?.ceilingCalls ?? "–"} calls`,
    );
  }
  const js = rampsToJudge.find((r) => r.name === "relay-js");
  if (js) {
    const verdict = relayVerdict(js.ramp, baseline);
    log(
      `relay capacity (js): ${verdict.capacityCalls} calls within the limits; ` +
        `${verdict.averageCeiling?.usPerPacket ?? "–"} µs per forwarded packet at ${verdict.averageCeiling?.calls ?? "–"} calls`,
    );
  }
  for (const { name, ramp } of rampsToJudge.filter((r) => r.name.startsWith("relay-threads"))) {
    const verdict = relayVerdict(ramp, baseline);
    save(`${name}-verdict`, verdict, 0);
    log(
      `${name}: ` +
        verdict.steps
          .map(
            (s) =>
              `${s.calls} calls media ${s.mediaThreadsPct?.join(" + ")}% (${s.mediaUsPerPacket} µs/packet), loss ${s.lossPct}%, added p99 ${s.addedP99} ms`,
          )
          .join("; "),
    );
  }
  for (const { name, ramp } of rampsToJudge.filter((r) => r.name === "relay" || r.name === "relay-loop")) {
    const verdict = relayVerdict(ramp, baseline);
    // The profile runs at 70% of the CPU ceiling: loaded, but short of saturation.
    if (ramp.pinMode === "process") {
      ceiling = verdict.cpuCeilingCalls ?? verdict.averageCeiling?.ceilingCalls ?? verdict.capacityCalls;
    }
    save(`${name}-verdict`, verdict, 0); // report.ts recomputes these
    log(
      `relay capacity (native, ${ramp.pinMode}): ${verdict.capacityCalls} calls with loss < ${verdict.limits.lossPct}% and ` +
        `added p99 < ${verdict.limits.addedP99Ms} ms (server CPU ${verdict.serverCpuPctAtCapacity}%); ` +
        `${verdict.averageCeiling?.usPerPacket ?? "–"} µs per forwarded packet at ${verdict.averageCeiling?.calls ?? "–"} calls ` +
        `(media threads ${verdict.averageCeiling?.mediaUsPerPacket ?? "–"})`,
    );
  }
}
if (only.has("conference")) {
  await timed("conference", () => conferenceScenario(ctx));
  // The JS plane's fan-out, for the comparison (the 3-speaker ramp).
  await timed("conference-js", () => conferenceScenario(ctx, { dataPlane: "js", speakers: [3] }));
}
if (only.has("setup")) await timed("setup", () => setupScenario(ctx));
if (only.has("signaling")) await timed("signaling", () => signalingScenario(ctx));
if (only.has("signaling-postgres")) {
  // The same signaling load on SQLite and on PostgreSQL (a throwaway local cluster), one after the
  // other in one run: logins, request round trips and presence with the database over a socket.
  await timed("signaling-postgres", () => signalingOnBothDatabases(ctx));
}
if (only.has("profile")) await timed("profile", () => profileScenario(ctx, ceiling));
if (only.has("login-flood")) await timed("login-flood", () => loginFloodScenario(ctx));
if (only.has("one-way-hunt")) {
  const hunt = await timed("one-way-hunt", () => oneWayHuntScenario(ctx));
  for (const line of huntLines(hunt)) log(line);
  // Its block on the page is its own: a run of this scenario alone updates it too.
  if (!quick && !values["no-docs"]) writeOneWayHuntDocs(path.join(resultsDir, "one-way-hunt.json"));
}
// Calls across nodes (cluster-calls.json): part of the cluster scenario, or alone with --only cluster-calls.
let clusterCalls: ClusterCallsResult | undefined;
if (only.has("cluster") || only.has("cluster-calls")) {
  clusterCalls = await timed("cluster-calls", () => clusterCallsScenario(ctx));
}
if (only.has("cluster")) await timed("cluster", () => clusterPresenceScenario(ctx, clusterCalls));

const seconds = Math.round((performance.now() - started) / 1000);
const load = {
  atStart: loadSamples[0],
  mean: Math.round((100 * loadSamples.reduce((a, b) => a + b, 0)) / loadSamples.length) / 100,
  max: Math.max(...loadSamples),
};
// A partial run (--only) keeps the full run's record, which the page's environment line reads.
save(
  only.size === SCENARIOS.length ? "run" : "run-partial",
  { seconds, scenarios: [...only], loadAverage1m: load },
  seconds,
);
log(`done in ${seconds} s`);
if (!quick && !values["no-docs"] && only.size === SCENARIOS.length) {
  writeDocs(resultsDir);
  log("updated docs/performance.md and docs/perf-*.svg");
}
process.exit(0);
