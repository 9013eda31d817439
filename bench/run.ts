/**
 * Parley benchmarks: `npm run bench` (full, updates docs/performance.md and its plots) and
 * `npm run bench:quick` (smoke check, under two minutes, results in bench/results/quick/).
 *
 *   node --import tsx bench/run.ts [--quick] [--only relay,conference,setup,signaling,profile,login-flood,one-way-hunt]
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
  weriftSteps,
} from "./scenarios/relay.js";
import { rtpengineRelayScenario } from "./scenarios/relay-rtpengine.js";
import { setupScenario } from "./scenarios/setup.js";
import { signalingScenario } from "./scenarios/signaling.js";

const SCENARIOS = ["relay", "conference", "setup", "signaling", "profile", "login-flood", "one-way-hunt"] as const;
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
if (only.has("relay")) {
  // The whole server on one core (the strict per-core figure). BENCH_RELAY_MODES=process,loop adds a
  // ramp with only its event loop on that core and V8's GC threads and libuv's pool on the others
  // (it mattered when GC stalls set the limit, on werift's RTP path; see docs/performance.md).
  const modes: PinMode[] =
    process.env.BENCH_RELAY_MODES && pinning.available
      ? (process.env.BENCH_RELAY_MODES.split(",") as PinMode[])
      : ["process"];
  const ramps: RelayResult[] = [];
  for (const pinMode of modes) {
    ramps.push(await timed(pinMode === "process" ? "relay" : "relay-loop", () => relayScenario(ctx, { pinMode })));
  }
  // The same ramp's first steps on werift's RTP path, for the comparison (full runs).
  const werift = quick
    ? undefined
    : await timed("relay-werift", () => relayScenario(ctx, { dataPlane: "werift", steps: weriftSteps(quick) }));
  // rtpengine on the same core with the same generator and steps (per core: one worker thread).
  const peer = peers.includes("rtpengine")
    ? await timed("relay-rtpengine", () => rtpengineRelayScenario(ctx))
    : undefined;
  const rtpengine = peer && !("skipped" in peer) ? peer : undefined;
  const maxCalls = Math.max(
    ...[...ramps, ...(werift ? [werift] : []), ...(rtpengine ? [rtpengine] : [])].map(
      (r) => r.steps.at(-1)?.calls ?? 0,
    ),
  );
  const baseline: BaselineResult = await timed("baseline", () => baselineScenario(ctx, maxCalls));
  if (werift) save("relay-werift-verdict", relayVerdict(werift, baseline), 0);
  if (rtpengine) {
    const verdict = relayVerdict(rtpengine, baseline);
    save("relay-rtpengine-verdict", verdict, 0);
    const at = verdict.steps.find((s) => s.calls === verdict.capacityCalls);
    log(
      `relay capacity (rtpengine ${rtpengine.peer.version}, one worker thread): ${verdict.capacityCalls} calls within ` +
        `the limits (rtpengine CPU ${verdict.serverCpuPctAtCapacity}%, ${at?.serverUsPerPacket ?? "–"} µs per ` +
        `forwarded packet); CPU ceiling by average cost ${verdict.averageCeiling?.ceilingCalls ?? "–"} calls`,
    );
  }
  for (const ramp of ramps) {
    const verdict = relayVerdict(ramp, baseline);
    // The profile runs at 70% of the CPU ceiling: loaded, but short of saturation.
    if (ramp.pinMode === "process") {
      ceiling = verdict.cpuCeilingCalls ?? verdict.averageCeiling?.ceilingCalls ?? verdict.capacityCalls;
    }
    save(ramp.pinMode === "process" ? "relay-verdict" : "relay-loop-verdict", verdict, 0); // report.ts recomputes these
    log(
      `relay capacity (${ramp.pinMode}): ${verdict.capacityCalls} calls with loss < ${verdict.limits.lossPct}% and ` +
        `added p99 < ${verdict.limits.addedP99Ms} ms (server CPU ${verdict.serverCpuPctAtCapacity}%); ` +
        `CPU ceiling ${verdict.cpuCeilingCalls} calls, ${verdict.marginalUsPerPacket} µs per forwarded packet`,
    );
  }
}
if (only.has("conference")) await timed("conference", () => conferenceScenario(ctx));
if (only.has("setup")) await timed("setup", () => setupScenario(ctx));
if (only.has("signaling")) await timed("signaling", () => signalingScenario(ctx));
if (only.has("profile")) await timed("profile", () => profileScenario(ctx, ceiling));
if (only.has("login-flood")) await timed("login-flood", () => loginFloodScenario(ctx));
if (only.has("one-way-hunt")) {
  const hunt = await timed("one-way-hunt", () => oneWayHuntScenario(ctx));
  for (const line of huntLines(hunt)) log(line);
  // Its block on the page is its own: a run of this scenario alone updates it too.
  if (!quick && !values["no-docs"]) writeOneWayHuntDocs(path.join(resultsDir, "one-way-hunt.json"));
}

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
