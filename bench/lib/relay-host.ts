/**
 * Fan-out host: Parley's MediaRelay (the built server code, the same class the server uses) in a
 * process of its own, driven over IPC. Conferences are not implemented yet, so the fan-out
 * benchmark exercises the relay primitive they will stand on: one leg's packets forwarded to N
 * legs with MediaLeg.forwardTo. No signaling, database or call logic runs here.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createLogger } from "../../packages/server/dist/logging/logger.js";
import { type MediaLeg, MediaRelay } from "../../packages/server/dist/media/index.js";
import { Rpc } from "./ipc.js";

const portMin = Number(process.env.BENCH_RELAY_PORT_MIN ?? 30000);
const portMax = Number(process.env.BENCH_RELAY_PORT_MAX ?? 32700);
const logDir = fs.mkdtempSync(path.join(os.tmpdir(), "parley-bench-relay-"));
// Info level to a file, as the server logs.
const logger = createLogger({ file: path.join(logDir, "relay.log"), level: "info", stdout: false });
let relay = new MediaRelay({ ip: "127.0.0.1", portMin, portMax }, logger);
const legs = new Map<string, MediaLeg>();
let nextId = 1;

new Rpc(process, {
  createLeg: async (args: { offer: string }) => {
    const id = `bench-${nextId++}`;
    const { leg, answerSdp } = await relay.createLeg(id, args.offer);
    legs.set(id, leg);
    return { id, sdp: answerSdp };
  },
  forward: (args: { source: string; targets: string[] }) => {
    const source = legs.get(args.source);
    if (!source) throw new Error(`no leg ${args.source}`);
    source.forwardTo(args.targets.map((id) => legs.get(id)).filter((leg): leg is MediaLeg => leg !== undefined));
    return {};
  },
  states: () => {
    const counts: Record<string, number> = {};
    for (const leg of legs.values()) counts[leg.state] = (counts[leg.state] ?? 0) + 1;
    return counts;
  },
  reset: () => {
    relay.close();
    legs.clear();
    relay = new MediaRelay({ ip: "127.0.0.1", portMin, portMax }, logger);
    return relay.stats();
  },
  stats: () => relay.stats(),
  exit: () => {
    relay.close();
    fs.rmSync(logDir, { recursive: true, force: true });
    setTimeout(() => process.exit(0), 10);
    return {};
  },
});

process.on("disconnect", () => {
  relay.close();
  fs.rmSync(logDir, { recursive: true, force: true });
  process.exit(0);
});
