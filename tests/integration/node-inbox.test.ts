/**
 * The inbox through which cluster nodes send each other call messages (a Redis stream per node),
 * against a real throwaway Redis: messages arrive in order; a reader whose connection is cut reads
 * on from where it stopped, losing nothing (a pub/sub subscriber misses what was published while it
 * reconnected; a write cut before its answer may arrive twice, which CallBus drops); messages sent with `resend` while Redis is down arrive, in order, once it is back;
 * others are refused at once; a node's inbox is removed when it closes.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { inboxKey, NodeInbox } from "@parley/server";
import { type Redis, redisUnavailable, startRedis, waitFor } from "@parley/testkit";
import { pino } from "pino";

const logger = pino({ level: "silent" });

describe("node inbox (Redis streams between cluster nodes)", { skip: redisUnavailable() }, () => {
  let redis: Redis;
  const inboxes: NodeInbox[] = [];

  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    for (const inbox of inboxes) await inbox.close();
    await redis?.stop();
  });

  async function pair(a: string, b: string) {
    const received: string[] = [];
    const sender = await NodeInbox.start({ url: redis.url, node: a, logger, onMessage: () => undefined });
    const receiver = await NodeInbox.start({ url: redis.url, node: b, logger, onMessage: (m) => received.push(m) });
    inboxes.push(sender, receiver);
    return { sender, receiver, received };
  }

  it("delivers messages in the order they were sent, requests and events mixed", async () => {
    const { sender, received } = await pair("a1", "b1");
    // Sent without waiting: a request (not resent) must not overtake events queued before it.
    const sent: Promise<void>[] = [];
    for (let i = 1; i <= 300; i++) sent.push(sender.send("b1", `m${i}`, i % 3 !== 0));
    await Promise.all(sent);
    await waitFor(() => received.length === 300, "300 messages received", { timeoutMs: 10_000 });
    assert.deepEqual(
      received,
      Array.from({ length: 300 }, (_, i) => `m${i + 1}`),
    );
  });

  it("a reader whose connection is cut reads on from where it stopped: nothing lost, in order", async () => {
    const { sender, received } = await pair("a2", "b2");
    let sent = 0;
    const sending = setInterval(() => {
      sent++;
      void sender.send("b2", `n${sent}`, true);
    }, 5);
    try {
      await waitFor(() => received.length >= 20, "the first messages received", { timeoutMs: 10_000 });
      // Every client connection of Redis cut (the writers reconnect too; resent messages wait for them).
      for (let i = 0; i < 3; i++) {
        await redis.command("CLIENT", "KILL", "TYPE", "normal");
        await new Promise((resolve) => setTimeout(resolve, 150));
      }
    } finally {
      clearInterval(sending);
    }
    // A write whose answer was lost in the cut is written again, so a message can arrive twice
    // (at least once, in order); the receiver keeps only what is newer than what it has, as
    // CallBus does with the sequence numbers.
    const kept = () => {
      let last = 0;
      return received.filter((m) => {
        const n = Number(m.slice(1));
        if (n <= last) return false;
        last = n;
        return true;
      });
    };
    await waitFor(() => kept().length >= sent, `all ${sent} messages received`, { timeoutMs: 15_000 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(
      kept(),
      Array.from({ length: sent }, (_, i) => `n${i + 1}`),
    );
  });

  it("while Redis is down, resent messages wait and arrive in order once it is back; others are refused", async () => {
    const { sender, received } = await pair("a3", "b3");
    await sender.send("b3", "before");
    await waitFor(() => received.length === 1, "the first message received", { timeoutMs: 10_000 });
    const refused: unknown[] = [];
    await redis.restart(async () => {
      await sender.send("b3", "not-resent").catch((error: unknown) => refused.push(error));
      for (let i = 1; i <= 5; i++) await sender.send("b3", `kept${i}`, true);
      assert.ok(sender.waiting >= 5, `${sender.waiting} messages waiting while Redis is down`);
    });
    await waitFor(() => received.length === 6, "the kept messages received after the restart", { timeoutMs: 20_000 });
    assert.deepEqual(received, ["before", "kept1", "kept2", "kept3", "kept4", "kept5"]);
    assert.equal(refused.length, 1, "a message not to be resent is refused while Redis is down");
    // The receiver can read a message before Redis's answer to the write reaches the sender.
    await waitFor(() => sender.waiting === 0, "the sender's queue empty", { timeoutMs: 10_000 });
  });

  it("a node's inbox is removed when it closes", async () => {
    const { sender, receiver, received } = await pair("a4", "b4");
    await sender.send("b4", "hello");
    await waitFor(() => received.length === 1, "the message received", { timeoutMs: 10_000 });
    assert.equal((await redis.command("EXISTS", inboxKey("b4"))).trim(), "1");
    await receiver.close();
    assert.equal((await redis.command("EXISTS", inboxKey("b4"))).trim(), "0");
  });
});
