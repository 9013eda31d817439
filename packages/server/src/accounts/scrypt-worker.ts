import { scryptSync } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import { parentPort } from "node:worker_threads";

/**
 * One password-hashing thread (see scrypt-threads.ts). On Linux a thread has its own nice value:
 * this one lowers its own to HASH_NICE (10), so when the event loop that relays calls' audio wakes on a
 * busy core, the kernel runs it first. Not lower: at nice 19 or under SCHED_IDLE a hash gets next
 * to no CPU while anything else keeps the cores busy (other processes included), and logins then
 * stall for many seconds. Elsewhere the thread keeps the process's priority.
 *
 * `PARLEY_HASH_NICE` (0 to 19) sets another value: 0 keeps the process's priority, for a machine
 * whose cores are kept busy by other programs that must not hold logins back (the browser tests,
 * where six Chromiums share two cores, use it).
 */
const DEFAULT_HASH_NICE = 10;

export function hashNice(value: string | undefined): number {
  if (value === undefined || value === "") return DEFAULT_HASH_NICE;
  const nice = Number(value);
  return Number.isInteger(nice) && nice >= 0 && nice <= 19 ? nice : DEFAULT_HASH_NICE;
}

try {
  const nice = hashNice(process.env.PARLEY_HASH_NICE);
  const tid = Number(fs.readlinkSync("/proc/thread-self").split("/").pop());
  if (nice > 0 && Number.isInteger(tid) && tid > 0) os.setPriority(tid, nice);
} catch {
  // Not Linux (no /proc/thread-self), or not allowed: the thread runs at normal priority.
}

export interface ScryptJob {
  id: number;
  password: string;
  salt: Uint8Array;
  keyLength: number;
  options: { N: number; r: number; p: number; maxmem: number };
}

parentPort?.on("message", (job: ScryptJob) => {
  try {
    const key = scryptSync(job.password, job.salt, job.keyLength, job.options);
    parentPort!.postMessage({ id: job.id, key });
  } catch (error) {
    parentPort!.postMessage({ id: job.id, error: (error as Error).message });
  }
});
