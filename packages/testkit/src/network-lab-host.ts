import fs from "node:fs";
import path from "node:path";
import { CHROMIUM_PATH } from "./browser.js";
import { PREFIX_LENGTH, removeNamespaceSync } from "./network-lab-blocks.js";
import { type CommandResult, mustRun, runCommand, runSync } from "./network-lab-exec.js";
import {
  addBlock,
  applyImpairments,
  type BlockOptions,
  clearBlocks,
  clearImpairments,
  type ImpairOptions,
  installFilters,
  LAB_INTERFACE,
} from "./network-lab-impair.js";

/** A host of a network lab: a namespace with a veth pair whose host end is a port of the lab's bridge. */
export interface LabHost {
  /** The namespace name. */
  readonly name: string;
  /** Its IPv4 address, e.g. 198.51.100.34 (changes with `changeAddress`). */
  readonly address: string;
  /** argv that runs `command args` inside the namespace: ["ip", ["netns","exec",name,command,...args]] */
  command(command: string, args?: string[]): [string, string[]];
  /** A whole command line (argv) turned into the one that runs it inside the namespace (bound: pass it as is, e.g. runBot's `wrap`). */
  readonly wrap: (argv: string[]) => string[];
  /** Runs a command in the namespace to completion (stdout, stderr, exit code). */
  run(command: string, args?: string[]): Promise<CommandResult>;
  /** Path of an executable wrapper script that runs Chromium inside the namespace (for playwright-core's executablePath). */
  readonly chromiumPath: string;
  /** Drops packets in/out of this host (nft rules inside the namespace); calls add up until `unblock`. */
  block(what: BlockOptions): Promise<void>;
  unblock(): Promise<void>;
  /**
   * Impairs this host's link in both directions, replacing earlier impairments: tc netem when the kernel
   * has it; otherwise loss with nft `numgen random` drops, and delay/jitter throw LabUnsupportedError.
   */
  impair(options: ImpairOptions): Promise<void>;
  clearImpairments(): Promise<void>;
  /** Moves the host to a new address in the lab's subnet (a network change), returning it. */
  changeAddress(): Promise<string>;
}

/** What a host needs of its lab. */
export interface HostNetwork {
  readonly bridge: string;
  /** The bridge's address: the host's default route. */
  readonly hostAddress: string;
  /** Where the host's files (its Chromium wrapper) go. */
  readonly dir: string;
  allocateAddress(): string;
  releaseAddress(address: string): void;
}

export class Host implements LabHost {
  readonly chromiumPath: string;
  #address: string;

  get address(): string {
    return this.#address;
  }

  constructor(
    readonly lab: HostNetwork,
    readonly name: string,
    readonly veth: string,
    address: string,
  ) {
    this.#address = address;
    this.chromiumPath = path.join(lab.dir, `chromium-${name}`);
  }

  /** Creates the namespace, its veth pair on the bridge, address, route, filter table and Chromium wrapper. */
  async setUp(): Promise<void> {
    await mustRun("ip", ["-batch", "-"], hostSideBatch(this.name, this.veth, this.lab.bridge, this.address));
    await mustRun("ip", ["-n", this.name, "-batch", "-"], namespaceBatch(this.address, this.lab.hostAddress));
    await installFilters(this.name);
    fs.writeFileSync(this.chromiumPath, chromiumWrapper(this.name), { mode: 0o755 });
  }

  readonly wrap = (argv: string[]): string[] => ["ip", "netns", "exec", this.name, ...argv];

  command(command: string, args: string[] = []): [string, string[]] {
    return ["ip", ["netns", "exec", this.name, command, ...args]];
  }

  run(command: string, args: string[] = []): Promise<CommandResult> {
    return runCommand(...this.command(command, args));
  }

  block(what: BlockOptions): Promise<void> {
    return addBlock(this.name, what);
  }

  unblock(): Promise<void> {
    return clearBlocks(this.name);
  }

  impair(options: ImpairOptions): Promise<void> {
    return applyImpairments(this.name, this.veth, options);
  }

  clearImpairments(): Promise<void> {
    return clearImpairments(this.name, this.veth);
  }

  async changeAddress(): Promise<string> {
    const old = this.address;
    const next = this.lab.allocateAddress();
    try {
      // This machine may still map the new address to another host's MAC; forget it.
      await runCommand("ip", ["neigh", "flush", "to", next, "dev", this.lab.bridge]);
      await mustRun(
        "ip",
        ["-n", this.name, "-batch", "-"],
        [
          `addr del ${old}/${PREFIX_LENGTH} dev ${LAB_INTERFACE}`,
          `addr add ${next}/${PREFIX_LENGTH} dev ${LAB_INTERFACE}`,
          `route replace default via ${this.lab.hostAddress}`,
          "",
        ].join("\n"),
      );
    } catch (error) {
      this.lab.releaseAddress(next);
      throw error;
    }
    this.lab.releaseAddress(old);
    this.#address = next;
    return next;
  }

  removeSync(): void {
    removeNamespaceSync(this.name);
    runSync("ip", ["link", "del", this.veth]);
  }
}

function hostSideBatch(name: string, veth: string, bridge: string, address: string): string {
  return [
    `netns add ${name}`,
    `link add ${veth} type veth peer name ${LAB_INTERFACE} netns ${name}`,
    `link set dev ${veth} master ${bridge} up`,
    `neigh flush to ${address} dev ${bridge}`,
    "",
  ].join("\n");
}

function namespaceBatch(address: string, gateway: string): string {
  return [
    "link set dev lo up",
    `addr add ${address}/${PREFIX_LENGTH} dev ${LAB_INTERFACE}`,
    `link set dev ${LAB_INTERFACE} up`,
    `route add default via ${gateway}`,
    "",
  ].join("\n");
}

const shellQuote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

function chromiumWrapper(namespace: string): string {
  return `#!/bin/sh\nexec ip netns exec ${shellQuote(namespace)} ${shellQuote(CHROMIUM_PATH)} "$@"\n`;
}
