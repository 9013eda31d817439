import fs from "node:fs";
import {
  blockAddress,
  bridgeName,
  claimBlock,
  HOST_OFFSETS,
  lockDir,
  namespacePids,
  namespacePrefix,
  PREFIX_LENGTH,
  releaseBlock,
  removeBlockLeftovers,
  vethName,
} from "./network-lab-blocks.js";
import { mustRun, NetworkLabError, runSync } from "./network-lab-exec.js";
import { Host, type HostNetwork, type LabHost } from "./network-lab-host.js";
import { networkLabUnavailable } from "./network-lab-impair.js";

export { LabUnsupportedError, NetworkLabError } from "./network-lab-exec.js";
export type { LabHost } from "./network-lab-host.js";
export { type BlockOptions, type ImpairOptions, netemAvailable, networkLabUnavailable } from "./network-lab-impair.js";

/**
 * A network lab: namespaces ("hosts") on one Linux bridge of this machine, in a /27 of
 * 198.51.100.0/24 of their own (see network-lab-blocks.ts). Each host has a veth pair whose host end is
 * a bridge port, its own address and a default route via the bridge's address (`hostAddress`), where
 * servers of the test listen. Hosts run bots or Chromium, and can be firewalled, impaired or renumbered.
 */
export interface NetworkLab {
  /** The address of this machine inside the lab (the bridge's address): servers listen here and use it as media address. */
  readonly hostAddress: string;
  addHost(label?: string): Promise<LabHost>;
  /** Removes every namespace, veth and the bridge, killing what still runs in the hosts (idempotent). */
  close(): Promise<void>;
}

/** Labs of this process, for the exit-time cleanup. */
const openLabs = new Set<Lab>();
let exitHooked = false;

function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  process.on("exit", () => {
    for (const lab of openLabs) lab.closeSync();
  });
  // Not SIGHUP: a Parley server in the same process takes it as its certificate reload signal.
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    const onSignal = () => {
      for (const lab of openLabs) lab.closeSync();
      process.removeListener(signal, onSignal);
      // Keep the signal's usual effect unless someone else handles it.
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}

class Lab implements NetworkLab, HostNetwork {
  readonly hostAddress: string;
  readonly bridge: string;
  readonly #hosts: Host[] = [];
  readonly #usedOffsets = new Set<number>();
  #nextOffset: number = HOST_OFFSETS.first;
  #nextIndex = 0;
  #closed = false;

  constructor(
    readonly block: number,
    readonly dir: string,
  ) {
    this.hostAddress = blockAddress(block, 1);
    this.bridge = bridgeName(block);
  }

  /** The next free host address, round-robin so a released address is not handed out again at once. */
  allocateAddress(): string {
    const count = HOST_OFFSETS.last - HOST_OFFSETS.first + 1;
    for (let i = 0; i < count; i++) {
      const offset = this.#nextOffset;
      this.#nextOffset = offset >= HOST_OFFSETS.last ? HOST_OFFSETS.first : offset + 1;
      if (!this.#usedOffsets.has(offset)) {
        this.#usedOffsets.add(offset);
        return blockAddress(this.block, offset);
      }
    }
    throw new NetworkLabError("no_free_subnet", `all ${count} host addresses of lab ${this.hostAddress}/27 are in use`);
  }

  releaseAddress(address: string): void {
    this.#usedOffsets.delete(Number(address.split(".")[3]) - this.block * 32);
  }

  async addHost(label?: string): Promise<LabHost> {
    if (this.#closed) throw new NetworkLabError("closed", "addHost() on a closed network lab");
    if (label !== undefined && (typeof label !== "string" || !/^[a-z0-9-]{1,20}$/.test(label))) {
      throw new NetworkLabError("bad_input", `host label ${JSON.stringify(label)}: use 1-20 of a-z, 0-9 and -`);
    }
    const index = this.#nextIndex++;
    const name = `${namespacePrefix(this.block)}${index}${label ? `-${label}` : ""}`;
    const veth = vethName(this.block, index);
    const address = this.allocateAddress();
    const host = new Host(this, name, veth, address);
    try {
      await host.setUp();
    } catch (error) {
      host.removeSync();
      this.releaseAddress(address);
      throw error;
    }
    this.#hosts.push(host);
    return host;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    // Stop what runs in the hosts first and let it go, so their namespaces' interfaces go with them.
    const pids = this.#hosts.flatMap((host) => namespacePids(host.name));
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {}
    }
    for (let i = 0; i < 100 && pids.some((pid) => fs.existsSync(`/proc/${pid}`)); i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    this.closeSync();
  }

  closeSync(): void {
    if (this.#closed) return;
    this.#closed = true;
    openLabs.delete(this);
    for (const host of this.#hosts) host.removeSync();
    runSync("ip", ["link", "del", this.bridge]);
    removeBlockLeftovers(this.block);
    releaseBlock(this.block);
  }
}

/**
 * Creates a lab: claims a free /27 of 198.51.100.0/24 (reclaiming those of dead processes), and puts
 * this machine on it with a bridge holding `hostAddress`. Throws the `networkLabUnavailable()` reason
 * where the lab cannot run.
 */
export async function createNetworkLab(): Promise<NetworkLab> {
  const unavailable = networkLabUnavailable();
  if (unavailable) throw new NetworkLabError("unsupported", unavailable);
  hookExit();
  const block = claimBlock();
  const lab = new Lab(block, lockDir(block));
  openLabs.add(lab);
  try {
    await mustRun(
      "ip",
      ["-batch", "-"],
      [
        `link add ${lab.bridge} type bridge`,
        `addr add ${lab.hostAddress}/${PREFIX_LENGTH} dev ${lab.bridge}`,
        `link set dev ${lab.bridge} up`,
        "",
      ].join("\n"),
    );
  } catch (error) {
    lab.closeSync();
    throw error;
  }
  return lab;
}
