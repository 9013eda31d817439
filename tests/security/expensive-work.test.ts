import assert from "node:assert/strict";
import fs from "node:fs";
import { describe, it } from "node:test";
import { RawClient, registered, sdkClient, startTestServer, TEST_PASSWORD, type TestServer } from "@parley/testkit";

type Reply = Awaited<ReturnType<RawClient["request"]>>;

const code = (reply: Reply) => (reply.ok ? "ok" : reply.error.code);

/** One scrypt at a time and four waiting: a handful of requests saturates the server's hashing. */
const small = { hashConcurrency: 1, hashQueue: 4, registrationsPerAddress: 1000, passwordChecksPerUser: 1000 };

function start(work: Partial<typeof small> = {}): Promise<TestServer> {
  return startTestServer({ workLimits: { ...small, windowMs: 60_000, ...work } });
}

function usernames(s: TestServer): string[] {
  return s.server.db
    .prepare<[], { username: string }>("SELECT username FROM users ORDER BY username")
    .all()
    .map((r) => r.username);
}

/** Opens `n` greeted connections, then sends the request on all of them at once. */
async function burst(s: TestServer, n: number, type: string, params: (i: number) => unknown) {
  const clients = await Promise.all(Array.from({ length: n }, () => RawClient.greeted(s.url)));
  // Queued hashes run one after the other (about 0.3 s each, more on a loaded machine): the last of
  // a burst may wait well past the usual 5 s for its answer.
  const pending = clients.map((c, i) => c.request(type, params(i), 60_000));
  let settled = 0;
  const all = Promise.all(pending.map((p) => p.finally(() => settled++))).finally(() => {
    for (const c of clients) c.close();
  });
  return { pending, all, settled: () => settled };
}

/** Resolves when the first of `pending` is answered SERVER_BUSY (the hash queue is full). */
function firstBusy(pending: Promise<Reply>[]): Promise<void> {
  return Promise.any(
    pending.map(async (p) => {
      if (code(await p) !== "SERVER_BUSY") throw new Error("not busy");
    }),
  );
}

/** Each thread of this process: its nice value and scheduling policy (Linux: /proc/self/task/TID/stat). */
function threadScheduling(): Map<number, { nice: number; policy: number }> {
  const threads = new Map<number, { nice: number; policy: number }>();
  for (const tid of fs.readdirSync("/proc/self/task")) {
    const stat = fs.readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    threads.set(Number(tid), { nice: Number(fields[16]), policy: Number(fields[38]) });
  }
  return threads;
}

describe("bounded expensive work", () => {
  it("hashes passwords on threads at a lower CPU priority than the event loop, so a login flood cannot take the core from the relay's event loop", async (t) => {
    if (!fs.existsSync("/proc/self/task")) return t.skip("no /proc/self/task on this system");
    const s = await start();
    try {
      (await registered(s.url, "hashed")).client.close();
      const threads = threadScheduling();
      const hashing = [...threads.values()].filter((thread) => thread.nice === 10);
      assert.ok(hashing.length > 0, `a hashing thread runs at nice 10: ${JSON.stringify([...threads])}`);
      assert.deepEqual(threads.get(process.pid), { nice: 0, policy: 0 }, "the event loop's thread keeps its priority");
    } finally {
      await s.stop();
    }
  });

  it("answers a flood of registrations beyond the hash queue with SERVER_BUSY at once, creates none of those accounts, and keeps serving others meanwhile", async () => {
    const s = await start();
    try {
      const bystander = await registered(s.url, "bystander");
      const flood = await burst(s, 16, "auth.register", (i) => ({ username: `flood${i}`, password: TEST_PASSWORD }));
      // The first refusal arrives while the accepted registrations are still hashing.
      await firstBusy(flood.pending);
      const directory = await bystander.client.request("directory.list");
      assert.equal(directory.ok, true);
      assert.ok(flood.settled() < 16, "another user's request was answered while the flood was still hashing");

      const results = (await flood.all).map(code);
      const busy = results.filter((r) => r === "SERVER_BUSY").length;
      assert.ok(busy >= 16 - 1 - small.hashQueue, `at most 1 + ${small.hashQueue} accepted: ${results}`);
      assert.equal(results.filter((r) => r === "ok").length, 16 - busy);
      const created = usernames(s).filter((name) => name.startsWith("flood"));
      assert.equal(created.length, 16 - busy, "a refused registration created nothing");

      const audit = await s.server.commands.run(["logs", "50", "--action", "register_refused"]);
      assert.match(audit.output, /server_busy/);
      bystander.client.close();
    } finally {
      await s.stop();
    }
  });

  it("answers a flood of logins beyond the hash queue with SERVER_BUSY, while a device that logged in before (its token kept by the SDK) still gets through the saturated queue first", async () => {
    const s = await start();
    const tokens = new Map<string, string>();
    const deviceTokens = { load: (u: string) => tokens.get(u), save: (u: string, t: string) => void tokens.set(u, t) };
    const first = sdkClient(s.url, { deviceTokens });
    const known = sdkClient(s.url, { deviceTokens });
    try {
      await first.connect();
      await first.register({ username: "owner", password: TEST_PASSWORD });
      first.disconnect();
      const issued = tokens.get("owner");
      assert.ok(issued, "the SDK kept the device token of the registration");

      await known.connect();
      const stranger = await RawClient.greeted(s.url);
      const flood = await burst(s, 16, "auth.login", (i) => ({ username: `nobody${i}`, password: "wrong guess" }));
      await firstBusy(flood.pending);

      // The queue is full: a new device is turned away, the known device goes to the front.
      const [untrusted, trusted] = await Promise.all([
        stranger.request("auth.login", { username: "owner", password: TEST_PASSWORD }),
        known.login("owner", TEST_PASSWORD).then(
          () => "ok",
          (error: { code?: string }) => error.code ?? String(error),
        ),
      ]);
      assert.equal(code(untrusted), "SERVER_BUSY");
      assert.equal(trusted, "ok");
      assert.ok(flood.settled() < 16, "the trusted login finished ahead of the queued anonymous ones");
      assert.ok(tokens.get("owner") !== issued, "each login hands out a fresh device token, which the SDK keeps");

      const results = (await flood.all).map(code);
      assert.ok(results.includes("INVALID_CREDENTIALS") && results.includes("SERVER_BUSY"), String(results));
      const audit = await s.server.commands.run(["logs", "50", "--action", "login_failed"]);
      assert.match(audit.output, /server_busy/);
      stranger.close();
    } finally {
      first.disconnect();
      known.disconnect();
      await s.stop();
    }
  });

  it("throttles registrations per address, with an audit entry, while another address still registers", async () => {
    const s = await start({ registrationsPerAddress: 2 });
    try {
      for (const name of ["first", "second"]) (await registered(s.url, name)).client.close();
      const third = await RawClient.greeted(s.url);
      assert.equal(
        code(await third.request("auth.register", { username: "third", password: TEST_PASSWORD })),
        "TOO_MANY_ATTEMPTS",
      );
      third.close();
      assert.deepEqual(usernames(s), ["first", "second"]);

      const elsewhere = await RawClient.greeted(s.url, { localAddress: "127.0.0.2" });
      assert.equal(
        code(await elsewhere.request("auth.register", { username: "third", password: TEST_PASSWORD })),
        "ok",
      );
      elsewhere.close();
      const audit = await s.server.commands.run(["logs", "50", "--action", "register_refused"]);
      assert.match(audit.output, /rate_limited/);
      assert.match(audit.output, /127\.0\.0\.1/);
    } finally {
      await s.stop();
    }
  });

  it("throttles a user's password re-checks: wrong old passwords, then even the right one, get TOO_MANY_ATTEMPTS and change nothing", async () => {
    const s = await start({ passwordChecksPerUser: 3 });
    try {
      const { client } = await registered(s.url, "carol");
      for (let i = 0; i < 3; i++) {
        const reply = await client.request("account.changePassword", {
          oldPassword: `not it ${i}`,
          newPassword: "a brand new secret",
        });
        assert.equal(code(reply), "WRONG_PASSWORD");
      }
      const right = await client.request("account.changePassword", {
        oldPassword: TEST_PASSWORD,
        newPassword: "a brand new secret",
      });
      assert.equal(code(right), "TOO_MANY_ATTEMPTS");
      assert.equal(code(await client.request("account.delete", { password: TEST_PASSWORD })), "TOO_MANY_ATTEMPTS");
      assert.deepEqual(usernames(s), ["carol"]);

      // The password did not change and the account is intact: it still logs in with the old one.
      const again = await RawClient.greeted(s.url, { localAddress: "127.0.0.2" });
      assert.equal(code(await again.request("auth.login", { username: "carol", password: TEST_PASSWORD })), "ok");
      // The throttle is per user: the session still works for everything else.
      assert.equal(code(await client.request("account.get")), "ok");
      again.close();
      client.close();
    } finally {
      await s.stop();
    }
  });
});
