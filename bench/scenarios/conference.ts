import fs from "node:fs";
import { Cluster, type Context, type MeasuredWindow, round } from "../lib/cluster.js";
import { mediaThreads, sleep, startServerProcess, tempDir } from "../lib/proc.js";
import { seedUsers } from "../lib/seed.js";
import type { RelayDataPlane } from "./relay.js";

/** The most participants a Parley call can have (CONFERENCE_MAX_LIMIT); the server is started with it. */
const MAX_PARTICIPANTS = 64;

export interface ConferenceStep extends MeasuredWindow {
  speakers: number;
  listeners: number;
  /** Conferences of this size running at once (each with its own users). */
  conferences: number;
  /** Packets the server sends per second: each speaker's 50 to every other participant, in every conference. */
  packetsOutPerSecond: number;
  serverUsPerPacketOut: number | null;
  /** The native plane's media threads' CPU per packet out; null on the other planes. */
  mediaUsPerPacketOut: number | null;
  setupSeconds: number;
  setupFailures: string[];
}

/**
 * Conference fan-out through the real server: one conference of K speakers and N listeners,
 * made with the real signaling (the host's `call.invite` with `to: [...]` for the first step,
 * `call.add` for each participant added by later steps). Every client offers one sendrecv and two
 * recvonly audio m-lines, bundled, with the audio level extension, as the web client does; the
 * server fills each participant's three receive slots with the loudest other participants. Speakers
 * send speech frames with a loud audio level, listeners send nothing. With K <= 3 every listener
 * hears every speaker and every speaker the others, so each speaker packet is expected at every
 * other participant. One generator process holds every leg, so one clock times every packet.
 *
 * The 3-speaker ramp ends with several of its largest conferences at once: one conference of 64
 * takes about a tenth of a core, where the server's fixed cost (its event loop with nothing to do,
 * the media thread's 1 ms rounds) and this shared machine's swings weigh on a per-packet figure;
 * two and three of them spread the fixed cost over more packets (the swings still show between
 * runs: docs/performance.md, section 2).
 */
export async function conferenceScenario(
  ctx: Context,
  options: { dataPlane?: RelayDataPlane; speakers?: number[] } = {},
) {
  const dataPlane = options.dataPlane ?? "native";
  const windowSeconds = ctx.quick ? 2 : 6;
  const one = (listeners: number[]) => listeners.map((l) => ({ listeners: l, conferences: 1 }));
  const all = ctx.quick
    ? [
        { speakers: 1, steps: one([3, 15]) },
        { speakers: 3, steps: [...one([13]), { listeners: 13, conferences: 2 }] },
      ]
    : [
        { speakers: 1, steps: one([3, 7, 15, 31, 63]) },
        {
          speakers: 3,
          steps: [...one([5, 13, 29, 61]), { listeners: 61, conferences: 2 }, { listeners: 61, conferences: 3 }],
        },
      ];
  const ramps = all.filter((r) => !options.speakers || options.speakers.includes(r.speakers));
  const results: { speakers: number; mediaThreads: string[]; steps: ConferenceStep[] }[] = [];
  for (const ramp of ramps) {
    const dataDir = tempDir("parley-bench-conference-");
    const most = Math.max(...ramp.steps.map((s) => s.conferences));
    // Conference k is made of users k * 64 to k * 64 + 63, its host the first of them.
    const users = await seedUsers(dataDir, MAX_PARTICIPANTS * most);
    const server = await startServerProcess({
      dataDir,
      pin: ctx.pinning.server,
      extraArgs: ["--max-conference", String(MAX_PARTICIPANTS)],
      env: { PARLEY_MEDIA_DATA_PLANE: dataPlane },
    });
    const cluster = await Cluster.start(ctx, 1);
    const steps: ConferenceStep[] = [];
    let threads: string[] = [];
    try {
      await cluster.all("login", () => ({ url: server.url, users, concurrency: 8 }));
      for (const { listeners, conferences } of ramp.steps) {
        const participants = ramp.speakers + listeners;
        const t0 = performance.now();
        const failures: string[] = [];
        for (let k = 0; k < conferences; k++) {
          const members = users.slice(k * MAX_PARTICIPANTS, k * MAX_PARTICIPANTS + participants);
          const [setup] = await cluster.all<{ failures: string[] }>("conference", () => ({
            host: members[0]!.username,
            members: members.map((u) => u.username),
            speakers: ramp.speakers,
            concurrency: 4,
          }));
          failures.push(...(setup?.failures ?? []));
        }
        const setupSeconds = round((performance.now() - t0) / 1000, 1);
        // Speakers become "speaking" within ~0.3 s and take the listeners' slots from the silent.
        await sleep(ctx.quick ? 1000 : 2500);
        const window = await cluster.measure(windowSeconds, server.pid);
        threads = mediaThreads(server.pid).map((t) => t.name);
        const packetsOutPerSecond = conferences * ramp.speakers * (participants - 1) * 50;
        const mediaPct = window.cpu.mediaThreadsPct?.reduce((a, b) => a + b, 0) ?? null;
        const step: ConferenceStep = {
          speakers: ramp.speakers,
          listeners,
          conferences,
          ...window,
          packetsOutPerSecond,
          serverUsPerPacketOut:
            window.cpu.serverPct === null ? null : round(((window.cpu.serverPct / 100) * 1e6) / packetsOutPerSecond, 1),
          mediaUsPerPacketOut: mediaPct === null ? null : round(((mediaPct / 100) * 1e6) / packetsOutPerSecond, 2),
          setupSeconds,
          setupFailures: failures,
        };
        steps.push(step);
        ctx.log(
          `conference (${dataPlane}) ${conferences > 1 ? `${conferences} x ` : ""}${ramp.speakers} speaker(s) + ${listeners} listeners: server ${window.cpu.serverPct}% cpu` +
            (mediaPct === null
              ? ", "
              : ` (media threads ${round(mediaPct, 2)}%, ${step.mediaUsPerPacketOut} µs/packet out), `) +
            `generator ${window.cpu.generatorsPct}%, loss ${window.lossPct}%, delay p50 ${window.delay.p50} ` +
            `p99 ${window.delay.p99} ms, setup ${setupSeconds} s` +
            (step.setupFailures.length ? `, ${step.setupFailures.length} failed: ${step.setupFailures[0]}` : ""),
        );
      }
    } finally {
      await cluster.all("hangup", () => ({})).catch(() => undefined);
      await cluster.stop();
      await server.stop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
    results.push({ speakers: ramp.speakers, mediaThreads: threads, steps });
  }
  return { dataPlane, windowSeconds, ramps: results };
}
