/**
 * A device that finds its connection dead before the server does (its own liveness ping, e.g. after
 * a network change) reconnects and takes its call back at once: the same session's `auth.resume`
 * with the call's id moves the call to the new connection and closes the old one. Another session
 * of the same account cannot take it.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { CallInfo } from "@parley/protocol";
import { loggedIn, RawClient, registered, TEST_PASSWORD, withTestServer } from "@parley/testkit";

describe("taking a call back before the server noticed the old connection died", () => {
  it("moves the call to the same session's new connection, closes the old one, and the call goes on", async () => {
    await withTestServer({}, async (s) => {
      const ann = await registered(s.url, "take-ann");
      const bob = await registered(s.url, "take-bob");
      const { call } = await ann.client.call<{ call: CallInfo }>("call.invite", { to: "take-bob" });
      await bob.client.event("call.incoming");
      await bob.client.call("call.answer", { callId: call.callId });

      // Another session of Ann's account (her other device) cannot take the call.
      const other = await loggedIn(s.url, "take-ann", TEST_PASSWORD, "tablet");
      const stranger = await RawClient.greeted(s.url);
      const refused = await stranger.call<{ calls?: CallInfo[] }>("auth.resume", {
        token: other.token,
        calls: [call.callId],
      });
      assert.deepEqual(refused.calls, []);

      // Ann's own session, from a new connection, while the old one still looks alive to the server.
      const back = await RawClient.greeted(s.url);
      const resumed = await back.call<{ calls?: CallInfo[] }>("auth.resume", {
        token: ann.token,
        calls: [call.callId],
      });
      assert.equal(resumed.calls?.length, 1);
      assert.equal(resumed.calls?.[0]?.state, "active");
      const closed = await ann.client.closed;
      assert.equal(closed.code, 1000, "the old connection is closed as replaced, quietly");

      // The call goes on with the new connection: Bob's hang-up reaches it.
      await bob.client.call("call.hangup", { callId: call.callId });
      const ended = await back.event("call.ended");
      assert.equal(ended.data.reason, "hangup");
      for (const c of [back, stranger, other.client, bob.client]) c.close();
    });
  });
});
