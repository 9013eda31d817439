import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, describe, it } from "node:test";
import {
  launchServerProcess,
  runParley,
  type ServerProcess,
  serverProcessArgs,
  tempDir,
  waitFor,
} from "@parley/testkit";
import { callBetween, Phone } from "../security/media-call.js";

/**
 * The server's choice of media data plane, as an operator meets it: the `--media-data-plane`,
 * `--media-threads` and `--media-io-uring` flags, and the fallback to the JavaScript plane, said
 * once, where the native plane cannot be loaded (here: its addon pointed at a file that does not
 * exist).
 */

const MISSING_ADDON = "/nonexistent/parley-data-plane.node";
const UNAVAILABLE = "native media data plane unavailable: relaying on the JS fast plane";

interface Running {
  server: ServerProcess;
  dir: string;
  phones: Phone[];
}
const running: Running[] = [];

after(async () => {
  for (const { server, dir, phones } of running) {
    for (const phone of phones) phone.close();
    server.child.kill();
    await server.exited;
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/** A `parley server` process with `args`; the environment's data-plane choice left out unless given. */
async function start(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Running> {
  const dir = tempDir("parley-plane-");
  const base = { ...process.env };
  delete base.PARLEY_MEDIA_DATA_PLANE;
  delete base.PARLEY_MEDIA_THREADS;
  delete base.PARLEY_MEDIA_IO_URING;
  const server = await launchServerProcess(process.execPath, [...serverProcessArgs(dir), ...args], {
    env: { ...base, ...env },
  });
  const run = { server, dir, phones: [] };
  running.push(run);
  return run;
}

/** The server's log records (pino JSON lines in the data dir). */
function logOf(run: Running): { level: number; msg: string; [key: string]: unknown }[] {
  return fs
    .readFileSync(path.join(run.dir, "parley.log"), "utf8")
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line));
}

/** Two phones of `run` in a call, each playing its tone; resolves once each hears the other. */
async function talkingPair(run: Running, tag: string, [hzA, hzB]: [number, number]): Promise<[Phone, Phone]> {
  const a = new Phone(run.server.url, `a-${tag}`);
  const b = new Phone(run.server.url, `b-${tag}`);
  run.phones.push(a, b);
  await a.register();
  await b.register();
  await callBetween(a, b);
  a.talk(hzA);
  b.talk(hzB);
  return [a, b];
}

/** Waits until `phone` has recorded two seconds, then checks it hears `hz`. */
async function assertHears(phone: Phone, hz: number): Promise<void> {
  phone.record();
  await waitFor(() => phone.recorded >= 100, `${phone.username} hearing two seconds`, { timeoutMs: 15_000 });
  const heard = phone.heard(hz);
  assert.ok(Math.abs(heard.dominant - hz) < 15, `${phone.username} hears ${heard.dominant} Hz, not ${hz} Hz`);
  assert.ok(heard.level > 0.05, `${phone.username}: level of the ${hz} Hz tone ${heard.level}`);
}

describe("the media data plane", () => {
  it("runs on the JS plane where the native plane cannot be loaded, saying why once as a warning", async () => {
    const run = await start([], { PARLEY_NATIVE_PLANE_PATH: MISSING_ADDON });
    const [a, b] = await talkingPair(run, "fallback", [1000, 440]);
    await assertHears(a, 440);
    await assertHears(b, 1000);
    const [c, d] = await talkingPair(run, "fallback-2", [700, 300]);
    await assertHears(d, 700);
    await assertHears(c, 300);

    const log = logOf(run);
    const unavailable = log.filter((r) => r.msg === UNAVAILABLE);
    assert.equal(unavailable.length, 1, "said once, for four legs");
    assert.equal(unavailable[0]!.level, 40, "a warning: the operator did not ask for the native plane");
    assert.match(String(unavailable[0]!.reason), /\S/, "with the reason");
    assert.equal(
      log.filter((r) => r.msg === "media leg on the fast data plane").length,
      4,
      "every leg on the JS plane",
    );
    assert.equal(log.filter((r) => r.msg === "media leg on the native data plane").length, 0);
  });

  it("says it as an error when --media-data-plane native was asked for, and still relays on the JS plane", async () => {
    const run = await start(["--media-data-plane", "native"], { PARLEY_NATIVE_PLANE_PATH: MISSING_ADDON });
    const [a, b] = await talkingPair(run, "named", [1000, 440]);
    await assertHears(b, 1000);
    await assertHears(a, 440);
    const unavailable = logOf(run).filter((r) => r.msg === UNAVAILABLE);
    assert.equal(unavailable.length, 1);
    assert.equal(unavailable[0]!.level, 50, "an error: the operator named the native plane");
  });

  it("relays on the plane --media-data-plane names, and refuses a plane it does not know", async () => {
    const run = await start(["--media-data-plane", "js"]);
    const [a, b] = await talkingPair(run, "js", [1000, 440]);
    await assertHears(b, 1000);
    await assertHears(a, 440);
    const log = logOf(run);
    assert.equal(log.filter((r) => r.msg === "media leg on the fast data plane").length, 2);
    assert.equal(log.filter((r) => r.msg === UNAVAILABLE).length, 0, "the native plane is not even loaded");

    const refused = await runParley(["server", "--media-data-plane", "fast", "--data-dir", tempDir()]);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /native, js, werift/);
  });

  it("runs two calls on two media threads with --media-threads 2, both with audio", async () => {
    const run = await start(["--media-threads", "2"]);
    const [a, b] = await talkingPair(run, "thread-1", [1000, 440]);
    const [c, d] = await talkingPair(run, "thread-2", [700, 300]);
    await assertHears(b, 1000);
    await assertHears(a, 440);
    await assertHears(d, 700);
    await assertHears(c, 300);
    const native = logOf(run).filter((r) => r.msg === "media leg on the native data plane");
    assert.equal(native.length, 4, "every leg on the native plane");
    // A leg is named "<call id>:<device id>" in the log.
    const threadsByCall = new Map<string, Set<unknown>>();
    for (const record of native) {
      const call = String(record.leg).split(":")[0]!;
      threadsByCall.set(call, (threadsByCall.get(call) ?? new Set()).add(record.thread));
    }
    assert.equal(threadsByCall.size, 2);
    const threads = [...threadsByCall.values()].map((set) => [...set]);
    assert.ok(
      threads.every((t) => t.length === 1),
      `each call's legs on one thread (${JSON.stringify(threads)})`,
    );
    assert.deepEqual(threads.flat().sort(), [0, 1], "the two calls on different threads");
    // By default the media threads batch their socket calls through io_uring (this kernel allows it).
    const batching = logOf(run).filter((r) => r.msg === "native media threads batch through io_uring");
    assert.equal(batching.length, 1, "io_uring batching said once");
  });

  it("relays with one system call per socket with --media-io-uring off, and says so once", async () => {
    const run = await start(["--media-io-uring", "off"]);
    const [a, b] = await talkingPair(run, "plain", [1000, 440]);
    await assertHears(b, 1000);
    await assertHears(a, 440);
    const log = logOf(run);
    assert.equal(log.filter((r) => r.msg === "media leg on the native data plane").length, 2);
    const plain = log.filter((r) => r.msg === "native media threads make one system call per socket");
    assert.equal(plain.length, 1);
    assert.equal(plain[0]?.reason, "io_uring turned off");
    assert.equal(log.filter((r) => r.msg === "native media threads batch through io_uring").length, 0);
  });
});
