import fs from "node:fs";
import { Cluster, type Context, round, summarizeTimings } from "../lib/cluster.js";
import type { CallTimings } from "../lib/loadgen.js";
import { CpuMeter, startServerProcess, tempDir } from "../lib/proc.js";
import { seedUsers } from "../lib/seed.js";

/**
 * Call setup latency through the real server: invite -> ringing at the callee, and answer -> first
 * audio packet at the callee and at the caller. Each call is hung up once measured; each generator
 * places its calls one after another, so the server is lightly loaded (a few calls at once).
 *
 * Two answer styles: "connected" answers once the callee's media leg is up (a person answering a
 * ringing phone: media is set up while it rings, as the SDK does), "ring" answers the moment the
 * call rings (an auto-answering bot: answer -> audio then includes ICE and DTLS).
 */
export async function setupScenario(ctx: Context) {
  const perMode = ctx.quick ? { connected: 12, ring: 6 } : { connected: 150, ring: 60 };
  const total = perMode.connected + perMode.ring;
  const dataDir = tempDir("parley-bench-setup-");
  const users = await seedUsers(dataDir, 2 * total);
  const server = await startServerProcess({ dataDir, pin: ctx.pinning.server });
  // Three client processes, each placing one call at a time: three calls at once, whatever the
  // generator count the relay uses (the figures stay comparable between runs).
  const processes = Math.max(3, ctx.generators);
  const cluster = await Cluster.start(ctx, processes);
  const modes: Record<string, unknown> = {};
  try {
    let next = 0;
    for (const mode of ["connected", "ring"] as const) {
      const count = perMode[mode];
      const groups = Array.from({ length: processes }, () => ({
        users: [] as typeof users,
        pairs: [] as { caller: string; callee: string }[],
      }));
      for (let i = 0; i < count; i++, next++) {
        const group = groups[i % processes]!;
        const caller = users[2 * next]!;
        const callee = users[2 * next + 1]!;
        group.users.push(caller, callee);
        group.pairs.push({ caller: caller.username, callee: callee.username });
      }
      await cluster.all("login", (g) => ({ url: server.url, users: groups[g]!.users, concurrency: 8 }));
      const meter = new CpuMeter([server.pid]);
      const t0 = performance.now();
      const results = await cluster.all<{ timings: CallTimings[]; failures: string[] }>("calls", (g) => ({
        pairs: groups[g]!.pairs,
        concurrency: 1,
        answer: mode,
        keep: false,
      }));
      const seconds = (performance.now() - t0) / 1000;
      const cpu = meter.read();
      const timings = results.flatMap((r) => r.timings);
      const failures = results.flatMap((r) => r.failures);
      const summary = summarizeTimings(timings);
      modes[mode] = {
        calls: timings.length,
        failures,
        concurrentCalls: processes,
        seconds: round(seconds, 1),
        serverCpuMsPerCall: timings.length ? round((cpu.seconds[0]! * 1000) / timings.length, 1) : null,
        timings: summary,
      };
      ctx.log(
        `setup (${mode}): ${timings.length} calls, invite->ringing p50 ${summary.inviteToRingingMs?.p50} ` +
          `p95 ${summary.inviteToRingingMs?.p95} ms, answer->audio callee p50 ${summary.answerToAudioCalleeMs?.p50} ` +
          `p95 ${summary.answerToAudioCalleeMs?.p95} ms, caller p50 ${summary.answerToAudioCallerMs?.p50} ` +
          `p95 ${summary.answerToAudioCallerMs?.p95} ms; server ${round((cpu.seconds[0]! * 1000) / Math.max(1, timings.length), 1)} ms CPU per call` +
          (failures.length ? `; ${failures.length} failed: ${failures[0]}` : ""),
      );
    }
  } finally {
    await cluster.all("hangup", () => ({})).catch(() => undefined);
    await cluster.stop();
    await server.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
  return { modes };
}
