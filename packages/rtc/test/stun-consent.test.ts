/**
 * The relay's own answer to ICE consent checks (stun-consent.ts) against werift's STUN code: a
 * Binding request as werift's agent builds one gets the very bytes werift's agent would answer
 * with, verifiable with the local password; anything werift must see itself (a nomination, a role
 * conflict, a wrong username or integrity, other methods, IPv6) is left to werift (null). And on
 * two connected werift peers, the answer keeps the sender's consent fresh.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, describe, it } from "node:test";
import {
  answerConsentCheck,
  consentCredentials,
  countAnsweredCheck,
  type IceConnectionLike,
  iceConnectionOf,
} from "@parley/rtc";
import { waitFor } from "@parley/testkit";
import { classes, Message, methods, parseMessage } from "werift";
import { closePeers, connectedPair } from "./peers.js";

after(closePeers);

const LOCAL = { localUsername: "rel4", localPassword: "relay-password-0123456789", iceControlling: false };
const ADDRESS = "198.51.100.7";
const PORT = 40123;

function request(
  options: {
    username?: string;
    password?: string;
    attributes?: [Parameters<Message["setAttribute"]>[0], unknown][];
  } = {},
): Buffer {
  const message = new Message(methods.BINDING, classes.REQUEST, randomBytes(12));
  message.setAttribute("USERNAME", options.username ?? `${LOCAL.localUsername}:cli9`);
  message.setAttribute("PRIORITY", 1853817087);
  for (const [name, value] of options.attributes ?? [["ICE-CONTROLLING", 123456789n]])
    message.setAttribute(name, value);
  message.addMessageIntegrity(Buffer.from(options.password ?? LOCAL.localPassword, "utf8"));
  message.addFingerprint();
  return message.bytes;
}

describe("consent check answers", () => {
  it("answers a consent check with the bytes werift's agent would send", () => {
    const data = request();
    const answer = answerConsentCheck(data, ADDRESS, PORT, LOCAL);
    assert.ok(answer, "answered");
    const werift = new Message(methods.BINDING, classes.RESPONSE, data.subarray(8, 20));
    werift.setAttribute("XOR-MAPPED-ADDRESS", [ADDRESS, PORT]);
    werift.addMessageIntegrity(Buffer.from(LOCAL.localPassword, "utf8"));
    werift.addFingerprint();
    assert.deepEqual(answer.response, werift.bytes);
    assert.deepEqual(answer.transactionId, data.subarray(8, 20));
    const parsed = parseMessage(answer.response, Buffer.from(LOCAL.localPassword, "utf8"));
    assert.ok(parsed, "integrity verified by werift");
    assert.deepEqual(parsed.getAttributeValue("XOR-MAPPED-ADDRESS"), [ADDRESS, PORT]);
  });

  it("leaves to werift what it must handle itself", () => {
    const cases: [string, Buffer, string][] = [
      [
        "a nomination",
        request({
          attributes: [
            ["ICE-CONTROLLING", 1n],
            ["USE-CANDIDATE", null],
          ],
        }),
        ADDRESS,
      ],
      ["a role conflict", request({ attributes: [["ICE-CONTROLLED", 1n]] }), ADDRESS],
      ["another username", request({ username: "other:cli9" }), ADDRESS],
      ["a wrong integrity", request({ password: "not-the-password-0123456" }), ADDRESS],
      ["an IPv6 sender", request(), "2001:db8::1"],
    ];
    for (const [what, data, address] of cases) {
      assert.equal(answerConsentCheck(data, address, PORT, LOCAL), null, what);
    }
    const indication = Buffer.from(request());
    indication.writeUInt16BE(0x0011, 0);
    assert.equal(answerConsentCheck(indication, ADDRESS, PORT, LOCAL), null, "a Binding indication");
    assert.equal(answerConsentCheck(request().subarray(0, 40), ADDRESS, PORT, LOCAL), null, "a truncated request");
    const controlling = { ...LOCAL, iceControlling: true };
    assert.equal(answerConsentCheck(request(), ADDRESS, PORT, controlling), null, "both controlling");
    assert.ok(answerConsentCheck(request({ attributes: [["ICE-CONTROLLED", 1n]] }), ADDRESS, PORT, controlling));
  });

  it("keeps a connected peer's consent fresh when its checks are answered this way", async () => {
    const [a, b] = await connectedPair();
    const connection = iceConnectionOf(b) as IceConnectionLike;
    const credentials = consentCredentials(connection);
    assert.ok(credentials, "werift's credentials found");
    assert.equal(typeof credentials.localPassword, "string");
    // The pair counts an answered check where werift's getStats reads it.
    const pair = connection.nominated;
    assert.ok(pair, "b's nominated pair");
    const counted = [pair.requestsReceived, pair.responsesSent];
    assert.equal(typeof counted[0], "number", "werift's requestsReceived");
    assert.equal(typeof pair.noteIncomingRequest, "function", "werift's noteIncomingRequest");
    countAnsweredCheck(pair, randomBytes(12));
    assert.deepEqual([pair.requestsReceived, pair.responsesSent], [counted[0]! + 1, counted[1]! + 1]);
    // a's next consent check reaches b's socket: answer it here instead of werift.
    const socket = connection.nominated?.protocol.transport?.socket;
    assert.ok(socket, "b's socket");
    const answered: Buffer[] = [];
    const listeners = socket.listeners("message") as ((
      data: Buffer,
      info: { address: string; port: number },
    ) => void)[];
    socket.removeAllListeners("message");
    socket.on("message", (data: Buffer, info: { address: string; port: number }) => {
      const answer = answerConsentCheck(data, info.address, info.port, credentials);
      if (answer) {
        answered.push(answer.response);
        socket.send(answer.response, info.port, info.address);
        return;
      }
      for (const l of listeners) l.call(socket, data, info);
    });
    const aPair = (iceConnectionOf(a) as IceConnectionLike).nominated as unknown as { responsesReceived: number };
    const before = aPair.responsesReceived;
    await waitFor(() => answered.length > 0 && aPair.responsesReceived > before, "a's check answered here", {
      timeoutMs: 15_000,
    });
    assert.equal((iceConnectionOf(a) as IceConnectionLike).canSendApplicationData?.(), true, "a keeps consent");
    assert.equal(a.connectionState, "connected");
  });
});
