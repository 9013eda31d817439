import fs from "node:fs";
import path from "node:path";
import { NetworkLabError, runSync } from "./network-lab-exec.js";

/**
 * The lab's address plan and names. 198.51.100.0/24 (TEST-NET-2) is split into eight /27 blocks, one
 * per lab, so labs of concurrent test processes never share a subnet. Block `b` is 198.51.100.(32b)/27:
 * its first address belongs to this machine (the bridge), the next 29 to the lab's hosts.
 * Everything a lab creates is named after its block (`plab<b>` bridge, `plab<b>v<n>` veth host ends,
 * `plab<b>-<n>[-label]` namespaces), so what a dead process left behind is found by name.
 */
export const LAB_BLOCKS = 8;
const BLOCK_SIZE = 32;
const LOCK_ROOT = "/tmp/parley-netlab";
/** A reclaim that has not finished after this long was interrupted and is taken over. */
const STALE_RECLAIM_MS = 30_000;

export function blockAddress(block: number, offset: number): string {
  return `198.51.100.${block * BLOCK_SIZE + offset}`;
}
/** Offsets a host may use: .2 to .30 of the block (.0 is the network, .1 this machine, .31 broadcast). */
export const HOST_OFFSETS = { first: 2, last: BLOCK_SIZE - 2 } as const;
export const PREFIX_LENGTH = 27;

export const bridgeName = (block: number): string => `plab${block}`;
export const vethName = (block: number, index: number): string => `plab${block}v${index}`;
export const namespacePrefix = (block: number): string => `plab${block}-`;

/** `pid starttime`: a pid alone may be reused by another process after the owner died. */
function processIdentity(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return `${pid} ${fields[19]}`;
  } catch {
    return undefined;
  }
}

/** The block's lock, holding its owner and the lab's files (Chromium wrappers); removed with the lock. */
export const lockDir = (block: number): string => path.join(LOCK_ROOT, String(block));

/** The lock's owner is gone (or the lock is unreadable garbage); false when it is free or alive. */
function ownerDead(block: number): boolean {
  let owner: string;
  try {
    owner = fs.readFileSync(path.join(lockDir(block), "owner"), "utf8").trim();
  } catch (error) {
    // No lock at all: free, not dead. A lock dir without owner file is never published (see claim).
    return (error as NodeJS.ErrnoException).code !== "ENOENT" || fs.existsSync(lockDir(block));
  }
  const pid = Number(owner.split(" ")[0]);
  return !Number.isInteger(pid) || processIdentity(pid) !== owner;
}

/** Publishes a lock dir with its owner file in one atomic rename; false when the block is taken. */
function tryClaim(block: number): boolean {
  const staging = path.join(LOCK_ROOT, `.claim-${process.pid}-${block}-${Date.now()}`);
  fs.mkdirSync(staging);
  fs.writeFileSync(path.join(staging, "owner"), `${processIdentity(process.pid)}\n`);
  try {
    fs.renameSync(staging, lockDir(block));
    return true;
  } catch {
    fs.rmSync(staging, { recursive: true, force: true });
    return false;
  }
}

/**
 * Removes the namespaces (killing what runs in them), the bridge and the veths of `block`. Only the
 * block's owner calls it (or the reclaimer, under the reclaim lock), so nobody else's lab is touched.
 */
export function removeBlockLeftovers(block: number): void {
  const prefix = namespacePrefix(block);
  for (const line of (runSync("ip", ["netns", "list"]) ?? "").split("\n")) {
    const name = line.split(" ")[0];
    if (name?.startsWith(prefix)) removeNamespaceSync(name);
  }
  const ours = new RegExp(`^plab${block}(v\\d+)?$`);
  for (const line of (runSync("ip", ["-o", "link", "show"]) ?? "").split("\n")) {
    const name = line.split(": ")[1]?.split("@")[0];
    if (name && ours.test(name)) runSync("ip", ["link", "del", name]);
  }
}

/** Kills every process in namespace `name` (all started by the lab) and deletes the namespace. */
export function removeNamespaceSync(name: string): void {
  for (const pid of namespacePids(name)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  }
  runSync("ip", ["netns", "del", name]);
}

export function namespacePids(name: string): number[] {
  const out = runSync("ip", ["netns", "pids", name]) ?? "";
  return out
    .split("\n")
    .map(Number)
    .filter((pid) => Number.isInteger(pid) && pid > 0 && pid !== process.pid);
}

/** Frees the blocks of processes that died without closing their labs, and removes what they left. */
export function reclaimAbandonedBlocks(): void {
  fs.mkdirSync(LOCK_ROOT, { recursive: true });
  const mutex = path.join(LOCK_ROOT, "reclaiming");
  try {
    fs.mkdirSync(mutex);
  } catch {
    const age = Date.now() - (fs.statSync(mutex, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
    if (age < STALE_RECLAIM_MS) return; // another process is reclaiming right now
    fs.rmSync(mutex, { recursive: true, force: true });
    reclaimAbandonedBlocks();
    return;
  }
  try {
    for (let block = 0; block < LAB_BLOCKS; block++) {
      // Under the mutex a dead lock cannot change hands: claiming needs the lock dir gone.
      if (!ownerDead(block)) continue;
      removeBlockLeftovers(block);
      fs.rmSync(lockDir(block), { recursive: true, force: true });
    }
  } finally {
    fs.rmSync(mutex, { recursive: true, force: true });
  }
}

/** Claims a free block for this process (reclaiming abandoned ones first) and clears its leftovers. */
export function claimBlock(): number {
  reclaimAbandonedBlocks();
  for (let block = 0; block < LAB_BLOCKS; block++) {
    if (tryClaim(block)) {
      removeBlockLeftovers(block);
      return block;
    }
  }
  throw new NetworkLabError(
    "no_free_subnet",
    `all ${LAB_BLOCKS} network lab subnets of 198.51.100.0/24 are in use (locks in ${LOCK_ROOT})`,
  );
}

export function releaseBlock(block: number): void {
  fs.rmSync(lockDir(block), { recursive: true, force: true });
}
