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
 */
const HASH_NICE = 10;
try {
  const tid = Number(fs.readlinkSync("/proc/thread-self").split("/").pop());
  if (Number.isInteger(tid) && tid > 0) os.setPriority(tid, HASH_NICE);
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
