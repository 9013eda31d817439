import { execFileSync } from "node:child_process";
import { scryptSync } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import { parentPort } from "node:worker_threads";

/**
 * One password-hashing thread (see scrypt-threads.ts). On Linux a thread has its own scheduling:
 * this one moves itself to SCHED_IDLE (util-linux `chrt -i`), so it runs only when the event
 * loop, which relays calls' audio, has nothing to do, and is preempted the moment a packet wakes
 * the loop; where chrt is missing, it lowers its nice value to 19 (the loop then still waits up to
 * the scheduler's wake-up granularity). Elsewhere it keeps the process's priority.
 */
try {
  const tid = Number(fs.readlinkSync("/proc/thread-self").split("/").pop());
  if (Number.isInteger(tid) && tid > 0) {
    os.setPriority(tid, 19);
    try {
      execFileSync("chrt", ["-i", "-p", "0", String(tid)], { stdio: "ignore", timeout: 5000 });
    } catch {
      // No chrt: nice 19 it is.
    }
  }
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
