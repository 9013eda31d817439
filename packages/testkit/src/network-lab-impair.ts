import { execFileSync } from "node:child_process";
import net from "node:net";
import { LabUnsupportedError, mustRun, NetworkLabError, runCommand } from "./network-lab-exec.js";

/**
 * Packet filters and link impairments of one lab host. Filters are nft rules in the host's own
 * namespace, in the netdev family on its interface (`ingress` and `egress` hooks): a drop there is
 * silent, as on a real network (an `inet` output rule would fail the sender's `send()` with EPERM).
 * Impairments use `tc netem` when the kernel has sch_netem, else loss falls back to nft `numgen random`.
 */

/** The host's interface inside its namespace (the namespace end of its veth pair). */
export const LAB_INTERFACE = "lab0";
const TABLE = "parley_lab";

export interface BlockOptions {
  udp?: boolean;
  tcp?: boolean;
  toAddress?: string;
}
export interface ImpairOptions {
  lossPercent?: number;
  delayMs?: number;
  jitterMs?: number;
}

interface Probe {
  unavailable: string | undefined;
  netem: boolean;
}
let probed: Probe | undefined;

/** Runs a probe step; the error text when it fails. */
function failure(command: string, args: string[], input?: string): string | undefined {
  try {
    execFileSync(command, args, { input, stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"] });
    return undefined;
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim();
    return stderr || (error as Error).message;
  }
}

/** Tries, once per process, everything the lab needs in a scratch namespace. */
function probe(): Probe {
  if (probed) return probed;
  const unavailable = (reason: string): Probe => ({ unavailable: reason, netem: false });
  probed = (() => {
    if (process.platform !== "linux") return unavailable("the network lab needs Linux network namespaces");
    if (process.getuid?.() !== 0) return unavailable("the network lab needs root (network namespaces, veth, nft)");
    const noIp = failure("ip", ["netns", "list"]);
    if (noIp) return unavailable(`\`ip netns\` is not available (Debian package iproute2): ${noIp}`);
    const noNft = failure("nft", ["--version"]);
    if (noNft) return unavailable(`nft is not available (Debian package nftables): ${noNft}`);
    const ns = `plabprobe-${process.pid}`;
    const noNs = failure("ip", ["netns", "add", ns]);
    if (noNs) return unavailable(`cannot create a network namespace: ${noNs}`);
    try {
      const noLinks =
        failure("ip", ["-n", ns, "link", "add", "probebr", "type", "bridge"]) ??
        failure("ip", ["-n", ns, "link", "add", "probev0", "type", "veth", "peer", "name", LAB_INTERFACE]);
      if (noLinks) return unavailable(`cannot create a bridge and a veth pair: ${noLinks}`);
      const noEgress = failure("ip", ["netns", "exec", ns, "nft", "-f", "-"], tableScript());
      if (noEgress) return unavailable(`nft cannot filter on the netdev egress hook (kernel 5.16+): ${noEgress}`);
      const noNetem = failure("ip", ["netns", "exec", ns, "tc", "qdisc", "add", "dev", "lo", "root", "netem"]);
      return { unavailable: undefined, netem: noNetem === undefined };
    } finally {
      failure("ip", ["netns", "del", ns]);
    }
  })();
  return probed;
}

/** Why the lab cannot run here (not root, no `ip netns`, no nft), or undefined when it can. Tests skip with this reason. */
export function networkLabUnavailable(): string | undefined {
  return probe().unavailable;
}

/** Whether the kernel has sch_netem (`tc ... netem`), so impairments can delay packets (cached probe). */
export function netemAvailable(): boolean {
  return probe().netem;
}

/** The host's filter table: regular chains for blocks and loss, jumped to from both hooks. */
function tableScript(): string {
  const hook = (name: string, hookName: string, suffix: string) =>
    `chain ${name} { type filter hook ${hookName} device "${LAB_INTERFACE}" priority 0; policy accept; ` +
    `jump block_${suffix}; jump loss_${suffix}; }`;
  return [
    `table netdev ${TABLE} {`,
    "chain block_in {}",
    "chain block_out {}",
    "chain loss_in {}",
    "chain loss_out {}",
    hook("ingress", "ingress", "in"),
    hook("egress", "egress", "out"),
    "}",
  ].join("\n");
}

const nft = (namespace: string, script: string) =>
  mustRun("ip", ["netns", "exec", namespace, "nft", "-f", "-"], script);

export function installFilters(namespace: string): Promise<string> {
  return nft(namespace, tableScript());
}

function badInput(message: string): NetworkLabError {
  return new NetworkLabError("bad_input", message);
}

/** Adds drop rules for `what` in both directions (UDP and/or TCP, or all IPv4; to/from one address or all). */
export async function addBlock(namespace: string, what: BlockOptions): Promise<void> {
  if (typeof what !== "object" || what === null) throw badInput("block() needs an object like { udp: true }");
  for (const key of ["udp", "tcp"] as const) {
    if (what[key] !== undefined && typeof what[key] !== "boolean") throw badInput(`block(): ${key} must be a boolean`);
  }
  if (what.toAddress !== undefined && !net.isIPv4(what.toAddress)) {
    throw badInput(`block(): toAddress ${JSON.stringify(what.toAddress)} is not an IPv4 address`);
  }
  const protocols = [what.udp ? "udp" : "", what.tcp ? "tcp" : ""].filter(Boolean);
  const match =
    protocols.length === 2
      ? "ip protocol { udp, tcp }"
      : protocols.length === 1
        ? `ip protocol ${protocols[0]}`
        : "meta protocol ip";
  const out = what.toAddress ? `ip daddr ${what.toAddress} ${match}` : match;
  const into = what.toAddress ? `ip saddr ${what.toAddress} ${match}` : match;
  await nft(
    namespace,
    `add rule netdev ${TABLE} block_out ${out} drop\nadd rule netdev ${TABLE} block_in ${into} drop\n`,
  );
}

export async function clearBlocks(namespace: string): Promise<void> {
  await nft(namespace, `flush chain netdev ${TABLE} block_in\nflush chain netdev ${TABLE} block_out\n`);
}

function checkImpairments(options: ImpairOptions): Required<ImpairOptions> {
  if (typeof options !== "object" || options === null)
    throw badInput("impair() needs an object like { lossPercent: 10 }");
  const value = (key: keyof ImpairOptions, max: number) => {
    const v = options[key] ?? 0;
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0 || v > max) {
      throw badInput(`impair(): ${key} must be a number from 0 to ${max}, got ${JSON.stringify(options[key])}`);
    }
    return v;
  };
  return {
    lossPercent: value("lossPercent", 100),
    delayMs: value("delayMs", 60_000),
    jitterMs: value("jitterMs", 60_000),
  };
}

/**
 * Replaces the impairments of a host: on both its interface (outgoing) and its veth's host end
 * (incoming), so each direction gets the loss and the delay. Checks everything before changing anything.
 */
export async function applyImpairments(namespace: string, hostEnd: string, options: ImpairOptions): Promise<void> {
  const { lossPercent, delayMs, jitterMs } = checkImpairments(options);
  if (netemAvailable()) {
    await clearImpairments(namespace, hostEnd);
    if (lossPercent === 0 && delayMs === 0 && jitterMs === 0) return;
    const netem = ["netem"];
    if (lossPercent > 0) netem.push("loss", `${lossPercent}%`);
    if (delayMs > 0 || jitterMs > 0) netem.push("delay", `${delayMs}ms`, ...(jitterMs > 0 ? [`${jitterMs}ms`] : []));
    await mustRun("ip", ["netns", "exec", namespace, "tc", "qdisc", "replace", "dev", LAB_INTERFACE, "root", ...netem]);
    await mustRun("tc", ["qdisc", "replace", "dev", hostEnd, "root", ...netem]);
    return;
  }
  if (delayMs > 0 || jitterMs > 0) {
    throw new LabUnsupportedError(
      "sch_netem",
      "this kernel has no sch_netem (tc netem), so the network lab cannot delay or jitter packets; loss works with nft",
    );
  }
  const perTenThousand = Math.round(lossPercent * 100);
  const rule =
    perTenThousand >= 10_000
      ? "meta protocol ip drop"
      : `meta protocol ip numgen random mod 10000 < ${perTenThousand} drop`;
  const script = [`flush chain netdev ${TABLE} loss_in`, `flush chain netdev ${TABLE} loss_out`];
  if (perTenThousand > 0)
    script.push(`add rule netdev ${TABLE} loss_in ${rule}`, `add rule netdev ${TABLE} loss_out ${rule}`);
  await nft(namespace, `${script.join("\n")}\n`);
}

export async function clearImpairments(namespace: string, hostEnd: string): Promise<void> {
  await nft(namespace, `flush chain netdev ${TABLE} loss_in\nflush chain netdev ${TABLE} loss_out\n`);
  if (!netemAvailable()) return;
  // No qdisc to delete is fine: these fail only when nothing was applied.
  await runCommand("ip", ["netns", "exec", namespace, "tc", "qdisc", "del", "dev", LAB_INTERFACE, "root"]);
  await runCommand("tc", ["qdisc", "del", "dev", hostEnd, "root"]);
}
