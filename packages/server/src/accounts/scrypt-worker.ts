import { scryptSync } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import { parentPort } from "node:worker_threads";

/**
 * One password-hashing thread (see scrypt-threads.ts). On Linux a thread has its own nice value:
 * this one lowers its own to 19 so the event loop, which relays calls' audio, always runs first on
 * a busy core; elsewhere it keeps the process's priority.
 */
try {
  const tid = Number(fs.readlinkSync("/proc/thread-self").split("/").pop());
  if (Number.isInteger(tid) && tid > 0) os.setPriority(tid, 19);
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
