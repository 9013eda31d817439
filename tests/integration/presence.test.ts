import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  BACKENDS,
  backendUnavailable,
  loggedIn,
  RawClient,
  registered,
  sdkClient,
  startTestServer,
  TEST_PASSWORD,
  type TestServer,
  waitFor,
} from "@parley/testkit";

let t: TestServer;
before(async () => {
  t = await startTestServer();
});
after(async () => {
  await t.stop();
});

type Dir = { users: { id: number; username: string; status: string; devices: number }[] };

describe("presence and directory", () => {
  it("lists every user with live status, and pushes each change to the others as it happens", async () => {
    const alice = await registered(t.url, "p-alice");
    const bob = await registered(t.url, "p-bob");
    const dir = await alice.client.call<Dir>("directory.list");
    const seenBob = dir.users.find((u) => u.username === "p-bob");
    assert.equal(seenBob?.status, "available");
    assert.equal(seenBob?.devices, 1);

    const mark = alice.client.received.length;
    await bob.client.call("presence.set", { status: "away" });
    await alice.client.event("presence.changed", (d) => d.userId === bob.userId && d.status === "away", mark);
    await bob.client.call("presence.set", { status: "busy" });
    await alice.client.event("presence.changed", (d) => d.userId === bob.userId && d.status === "busy", mark);

    bob.client.close();
    await alice.client.event("presence.changed", (d) => d.userId === bob.userId && d.status === "offline", mark);
    const after = await alice.client.call<Dir>("directory.list");
    assert.equal(after.users.find((u) => u.username === "p-bob")?.status, "offline");

    // The chosen status is remembered: Bob is busy again when he comes back.
    const back = await loggedIn(t.url, "p-bob");
    await alice.client.event("presence.changed", (d) => d.userId === bob.userId && d.status === "busy", mark);
    back.client.close();
    alice.client.close();
  });

  it("announces new accounts and renames to everyone online", async () => {
    const watcher = await registered(t.url, "p-watcher");
    const mark = watcher.client.received.length;
    const newcomer = await registered(t.url, "p-newcomer", { displayName: "New Comer" });
    await watcher.client.event(
      "directory.userAdded",
      (d) => (d.user as { username: string }).username === "p-newcomer",
      mark,
    );
    await newcomer.client.call("account.setDisplayName", { displayName: "Renamed" });
    await watcher.client.event(
      "directory.userUpdated",
      (d) => (d.user as { displayName: string }).displayName === "Renamed",
      mark,
    );
    await newcomer.client.call("account.delete", { password: TEST_PASSWORD });
    await watcher.client.event("directory.userRemoved", (d) => d.userId === newcomer.userId, mark);
    watcher.client.close();
    newcomer.client.close();
  });

  it("keeps a user online while any of their devices is connected, and rings events on all of them", async () => {
    const peer = await registered(t.url, "p-peer");
    const phone = await registered(t.url, "p-multi", { deviceName: "phone" });
    const laptop = await loggedIn(t.url, "p-multi", TEST_PASSWORD, "laptop");
    await peer.client.event("presence.changed", (d) => d.userId === phone.userId && d.devices === 2);

    // A change made on one device reaches the other.
    const mark = laptop.client.received.length;
    await phone.client.call("account.setDisplayName", { displayName: "Multi Device" });
    await laptop.client.event(
      "account.updated",
      (d) => (d.user as { displayName: string }).displayName === "Multi Device",
      mark,
    );

    const peerMark = peer.client.received.length;
    phone.client.close();
    await peer.client.event("presence.changed", (d) => d.userId === phone.userId && d.devices === 1, peerMark);
    const dir = await peer.client.call<Dir>("directory.list");
    assert.equal(dir.users.find((u) => u.id === phone.userId)?.status, "available");
    laptop.client.close();
    await peer.client.event("presence.changed", (d) => d.userId === phone.userId && d.status === "offline", peerMark);
    peer.client.close();
  });

  it("never sends any client another client's address", async () => {
    const a = await RawClient.greeted(t.url, { localAddress: "127.0.0.2" });
    await a.call("auth.register", { username: "p-priv-a", password: TEST_PASSWORD });
    const b = await RawClient.greeted(t.url, { localAddress: "127.0.0.3" });
    await b.call("auth.register", { username: "p-priv-b", password: TEST_PASSWORD });
    await a.call("directory.list");
    await b.call("directory.list");
    await a.call("presence.set", { status: "away" });
    await b.event("presence.changed", (d) => d.status === "away");
    await b.call("phonebook.add", { username: "p-priv-a", label: "A" });
    await a.call("account.sessions");
    const users = await t.server.commands.run(["who"]);
    assert.match(users.output, /127\.0\.0\.2/, "the operator does see addresses");
    for (const frame of a.frames) assert.ok(!frame.includes("127.0.0.3"), `a received b's address: ${frame}`);
    for (const frame of b.frames) assert.ok(!frame.includes("127.0.0.2"), `b received a's address: ${frame}`);
    for (const frame of [...a.frames, ...b.frames]) assert.ok(!/127\.0\.0\.\d/.test(frame), frame);
    a.close();
    b.close();
  });

  it("keeps the SDK's directory in sync with live events", async () => {
    const sdk = sdkClient(t.url);
    await sdk.connect();
    await sdk.register({ username: "p-sdk", password: TEST_PASSWORD });
    const other = await registered(t.url, "p-sdk-peer");
    await waitFor(() => sdk.directory.find((u) => u.username === "p-sdk-peer")?.status === "available", "peer online");
    await other.client.call("presence.set", { status: "away" });
    await waitFor(() => sdk.directory.find((u) => u.username === "p-sdk-peer")?.status === "away", "peer away");
    other.client.close();
    await waitFor(() => sdk.directory.find((u) => u.username === "p-sdk-peer")?.status === "offline", "peer offline");
    sdk.disconnect();
  });
});

// The phone book on both back-ends, each with a server of its own.
for (const backend of BACKENDS) {
  describe(`phone book (${backend})`, { skip: backendUnavailable(backend) }, () => {
    let t: TestServer;
    before(async () => {
      t = await startTestServer({ backend });
    });
    after(async () => {
      await t.stop();
    });

    it("adds, lists, updates and removes entries, synced to the user's other devices", async () => {
      const owner = await registered(t.url, "pb-owner");
      const second = await loggedIn(t.url, "pb-owner");
      await registered(t.url, "pb-friend", { displayName: "Friend" });
      await registered(t.url, "pb-other");
      const entry = await owner.client.call<{ id: number; label: string; favourite: boolean; displayName: string }>(
        "phonebook.add",
        { username: "pb-friend", label: "Best friend", notes: "met at school", favourite: true },
      );
      assert.equal(entry.label, "Best friend");
      assert.equal(entry.displayName, "Friend");
      assert.equal(entry.favourite, true);
      await second.client.event("phonebook.updated", (d) => (d.entries as unknown[]).length === 1);

      const dup = await owner.client.request("phonebook.add", { username: "pb-friend" });
      assert.equal(!dup.ok && dup.error.code, "ENTRY_EXISTS");
      const unknown = await owner.client.request("phonebook.add", { username: "no-such-user" });
      assert.equal(!unknown.ok && unknown.error.code, "USER_NOT_FOUND");
      await owner.client.call("phonebook.add", { username: "pb-other" });

      const updated = await owner.client.call<{ label: string; notes: string; favourite: boolean }>(
        "phonebook.update",
        {
          id: entry.id,
          label: "Old friend",
          favourite: false,
        },
      );
      assert.deepEqual([updated.label, updated.notes, updated.favourite], ["Old friend", "met at school", false]);
      const list = await owner.client.call<{ entries: { label: string }[] }>("phonebook.list");
      assert.equal(list.entries.length, 2);

      await owner.client.call("phonebook.remove", { id: entry.id });
      const missing = await owner.client.request("phonebook.remove", { id: entry.id });
      assert.equal(!missing.ok && missing.error.code, "ENTRY_NOT_FOUND");
      assert.equal((await owner.client.call<{ entries: unknown[] }>("phonebook.list")).entries.length, 1);
      owner.client.close();
      second.client.close();
    });

    it("pushes the updated phone book when a contact renames or deletes their account", async () => {
      const owner = await registered(t.url, "pb-watch");
      const contact = await registered(t.url, "pb-renamer");
      await owner.client.call("phonebook.add", { username: "pb-renamer" });
      const mark = owner.client.received.length;
      await contact.client.call("account.setDisplayName", { displayName: "Now Renamed" });
      await owner.client.event(
        "phonebook.updated",
        (d) => (d.entries as { displayName: string }[])[0]?.displayName === "Now Renamed",
        mark,
      );
      await contact.client.call("account.delete", { password: TEST_PASSWORD });
      await owner.client.event("phonebook.updated", (d) => (d.entries as unknown[]).length === 0, mark);
      owner.client.close();
      contact.client.close();
    });

    it("keeps each user's phone book private", async () => {
      const a = await registered(t.url, "pb-a");
      const b = await registered(t.url, "pb-b");
      const entry = await a.client.call<{ id: number }>("phonebook.add", { username: "pb-b" });
      const touch = await b.client.request("phonebook.update", { id: entry.id, label: "hijack" });
      assert.equal(!touch.ok && touch.error.code, "ENTRY_NOT_FOUND");
      const remove = await b.client.request("phonebook.remove", { id: entry.id });
      assert.equal(!remove.ok && remove.error.code, "ENTRY_NOT_FOUND");
      assert.equal((await b.client.call<{ entries: unknown[] }>("phonebook.list")).entries.length, 0);
      a.client.close();
      b.client.close();
    });

    it("follows a contact's rename and drops the entry when the contact deletes their account", async () => {
      const a = await registered(t.url, "pb-follow");
      const b = await registered(t.url, "pb-mover");
      await a.client.call("phonebook.add", { username: "pb-mover", label: "Mover" });
      await b.client.call("account.setUsername", { username: "pb-moved" });
      const list = await a.client.call<{ entries: { username: string }[] }>("phonebook.list");
      assert.equal(list.entries[0]?.username, "pb-moved");
      await b.client.call("account.delete", { password: TEST_PASSWORD });
      assert.equal((await a.client.call<{ entries: unknown[] }>("phonebook.list")).entries.length, 0);
      a.client.close();
      b.client.close();
    });
  });
}
