import { Cluster, type Context, type MeasuredWindow, round } from "../lib/cluster.js";
import { PORTS, sleep, startWorker } from "../lib/proc.js";
import { fitCeiling } from "./relay.js";

export interface FastpathStep extends MeasuredWindow {
  calls: number;
  relayUsPerPacket: number | null;
  generatorUsPerPacket: number;
  setupFailures: number;
}

/**
 * The proposed data plane, measured: 1:1 calls through fastpath-relay.ts (plain Node SRTP relay,
 * no werift on the packet path), pinned like the server, with the same generators and the same
 * 50 packets/s each way. On a two-core machine the generators (one core) run out before the relay
 * does, so the ramp stops when they fall behind, and the relay's cost per packet is what counts.
 */
export async function fastpathScenario(ctx: Context) {
  const steps =
    process.env.BENCH_FASTPATH_STEPS?.split(",").map(Number) ??
    (ctx.quick ? [50, 150] : [50, 100, 200, 300, 400, 500, 600]);
  const windowSeconds = ctx.quick ? 2 : 6;
  const relay = await startWorker(
    "fastpath-relay",
    ctx.pinning.server,
    {},
    {
      BENCH_RELAY_PORT_MIN: String(PORTS.relayHost.min),
      BENCH_RELAY_PORT_MAX: String(PORTS.relayHost.max),
    },
  );
  const cluster = await Cluster.start(ctx, ctx.generators, {
    relay: (args: { cmd: string; args: unknown }) => relay.rpc.call(args.cmd, args.args),
  });
  const rows: FastpathStep[] = [];
  let current = 0;
  try {
    for (const target of steps) {
      const add = target - current;
      const results = await cluster.all<{ failures: string[] }>("staticCalls", (g) => ({
        count: Math.floor(add / ctx.generators) + (g < add % ctx.generators ? 1 : 0),
        concurrency: 8,
      }));
      current = target;
      await sleep(1500);
      const window = await cluster.measure(windowSeconds, relay.pid);
      const perPacket = (pct: number | null) => (pct === null ? null : round(((pct / 100) * 1e6) / (target * 100), 1));
      rows.push({
        calls: target,
        ...window,
        relayUsPerPacket: perPacket(window.cpu.serverPct),
        generatorUsPerPacket: perPacket(window.cpu.generatorsPct)!,
        setupFailures: results.flatMap((r) => r.failures).length,
      });
      ctx.log(
        `fast path ${target} calls: relay ${window.cpu.serverPct}% cpu (${perPacket(window.cpu.serverPct)} µs/packet), ` +
          `generators ${window.cpu.generatorsPct}%, loss ${window.lossPct}%, delay p50 ${window.delay.p50} ` +
          `p99 ${window.delay.p99} ms, send lateness p99 ${window.lateness.p99} ms`,
      );
      // Generators behind (sending late) or the relay saturated: the numbers beyond are not the relay's.
      if (window.lateness.p99 > 20 || window.lossPct >= 1 || (window.cpu.serverPct ?? 0) >= 95) break;
    }
  } finally {
    await cluster.all("hangup", () => ({})).catch(() => undefined);
    await cluster.stop();
    await relay.stop();
  }
  // Relay CPU per forwarded packet from a fit over the steps the generators kept up with.
  const kept = rows.filter((r) => r.lateness.p99 <= 20 && r.lossPct < 1 && (r.cpu.serverPct ?? 0) >= 10);
  const fit = fitCeiling(kept.map((r) => [r.calls, r.cpu.serverPct!]));
  const coreFit = fitCeiling(
    kept.filter((r) => r.cpu.serverCoreBusyPct !== null).map((r) => [r.calls, r.cpu.serverCoreBusyPct!]),
  );
  const marginalUsPerPacket = fit.usPerPacket;
  const cpuCeilingCalls = fit.ceiling;
  ctx.log(`fast path: ${marginalUsPerPacket} µs per forwarded packet, CPU ceiling ${cpuCeilingCalls} calls per core`);
  return {
    windowSeconds,
    steps: rows,
    marginalUsPerPacket,
    cpuCeilingCalls,
    coreMarginalUsPerPacket: coreFit.usPerPacket,
    coreCeilingCalls: coreFit.ceiling,
  };
}
