import { Cluster, type Context, type MeasuredWindow, round } from "../lib/cluster.js";
import { PORTS, sleep, startWorker } from "../lib/proc.js";

export interface FanoutStep extends MeasuredWindow {
  speakers: number;
  listeners: number;
  /** Packets the relay sends per second (each speaker's 50 packets/s to every other leg). */
  packetsOutPerSecond: number;
  relayUsPerPacketOut: number | null;
  setupFailures: number;
}

/**
 * Conference fan-out. Parley has no conferences yet, so this measures the primitive they will be
 * built on: Parley's MediaRelay (built server code) in a process of its own, pinned like the server,
 * with K speaker legs each forwarded by MediaLeg.forwardTo to every other leg (N listeners, and the
 * other speakers). Listeners send nothing. One generator process holds every leg, so one clock
 * times every packet.
 */
export async function fanoutScenario(ctx: Context) {
  const windowSeconds = ctx.quick ? 2 : 6;
  const ramps = ctx.quick
    ? [{ speakers: 1, listeners: [1, 25] }]
    : [
        { speakers: 1, listeners: [1, 10, 25, 50, 100, 150, 200, 300, 400] },
        { speakers: 3, listeners: [10, 50, 100] },
      ];
  const results: { speakers: number; steps: FanoutStep[] }[] = [];
  for (const ramp of ramps) {
    const host = await startWorker(
      "relay-host",
      ctx.pinning.server,
      {},
      {
        BENCH_RELAY_PORT_MIN: String(PORTS.relayHost.min),
        BENCH_RELAY_PORT_MAX: String(PORTS.relayHost.max),
      },
    );
    const cluster = await Cluster.start(ctx, 1, {
      relay: (args: { cmd: string; args: unknown }) => host.rpc.call(args.cmd, args.args),
    });
    const steps: FanoutStep[] = [];
    let bad = 0;
    try {
      for (const listeners of ramp.listeners) {
        const [setup] = await cluster.all<{ failures: string[] }>("fanout", () => ({
          speakers: ramp.speakers,
          listeners,
          concurrency: 4,
        }));
        await sleep(ctx.quick ? 500 : 2000);
        const window = await cluster.measure(windowSeconds, host.pid);
        const legs = ramp.speakers + listeners;
        const packetsOutPerSecond = ramp.speakers * (legs - 1) * 50;
        const step: FanoutStep = {
          speakers: ramp.speakers,
          listeners,
          ...window,
          packetsOutPerSecond,
          relayUsPerPacketOut:
            window.cpu.serverPct === null ? null : round(((window.cpu.serverPct / 100) * 1e6) / packetsOutPerSecond, 1),
          setupFailures: setup?.failures.length ?? 0,
        };
        steps.push(step);
        ctx.log(
          `fan-out ${ramp.speakers} speaker(s) -> ${listeners} listeners: relay ${window.cpu.serverPct}% cpu, ` +
            `generator ${window.cpu.generatorsPct}%, loss ${window.lossPct}%, delay p50 ${window.delay.p50} ` +
            `p99 ${window.delay.p99} ms`,
        );
        bad = window.lossPct >= 1 ? bad + 1 : 0;
        if (bad >= 2 || (window.cpu.serverPct ?? 0) >= 99) break;
      }
    } finally {
      await cluster.all("hangup", () => ({})).catch(() => undefined);
      await cluster.stop();
      await host.stop();
    }
    results.push({ speakers: ramp.speakers, steps });
  }
  return { windowSeconds, ramps: results };
}
