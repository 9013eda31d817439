import {
  MAX_MESSAGE_BYTES,
  ParleyError,
  type RequestResult,
  type RequestType,
  SUPPORTED_PROTOCOL_VERSIONS,
} from "@parley/protocol";
import type { Authenticated, Origin } from "../accounts/account-service.js";
import { toSelf } from "../accounts/user-store.js";
import { turnIceServers } from "../media/turn-credentials.js";
import type { Services } from "../services.js";
import type { Connection, Identity } from "./connection.js";
import type { Handler } from "./handler.js";
import { OPERATOR_HANDLERS } from "./operator-handlers.js";

function me(conn: Connection): Identity {
  const identity = conn.identity;
  if (!identity) throw new ParleyError("NOT_AUTHENTICATED");
  return identity;
}

/** Who is asking, for the audit log and rate limits. */
function from(conn: Connection): Origin {
  return { address: conn.address, connectionId: conn.id };
}

function loggedIn(conn: Connection, auth: Authenticated): RequestResult<"auth.login"> {
  conn.authenticate(auth.user.id, auth.session.id, auth.session.device_name);
  return {
    token: auth.token,
    expiresAt: auth.session.expires_at,
    sessionId: auth.session.id,
    user: toSelf(auth.user),
    ...(auth.deviceToken ? { deviceToken: auth.deviceToken } : {}),
  };
}

/**
 * A node of a cluster that has lost Redis cannot share who logs in with the other nodes: it takes
 * no logins (CLUSTER_UNAVAILABLE) until the connection is back. Connections already in stay.
 */
function admitLogin(cluster: Services["cluster"]): void {
  if (cluster && !cluster.available) throw new ParleyError("CLUSTER_UNAVAILABLE");
}

/** One handler per request type; params arrive already validated against the protocol schema. */
export const HANDLERS: { [T in RequestType]: Handler<T> } = {
  hello: async (params, conn, { version, instanceId, accounts }) => {
    if (!SUPPORTED_PROTOCOL_VERSIONS.includes(params.protocolVersion)) {
      setImmediate(() => conn.close("PROTOCOL_VERSION_UNSUPPORTED"));
      throw new ParleyError(
        "PROTOCOL_VERSION_UNSUPPORTED",
        `Protocol version ${params.protocolVersion} is not supported; this server speaks ${SUPPORTED_PROTOCOL_VERSIONS.join(", ")}.`,
      );
    }
    conn.greeted();
    return {
      protocolVersion: params.protocolVersion,
      serverVersion: version,
      instanceId,
      signupEnabled: await accounts.signupEnabled(),
      maxMessageBytes: MAX_MESSAGE_BYTES,
    };
  },

  ping: () => ({}),

  "auth.register": async (params, conn, { accounts, cluster }) => {
    admitLogin(cluster);
    return loggedIn(conn, await accounts.register(params, from(conn)));
  },

  "auth.login": async (params, conn, { accounts, cluster }) => {
    admitLogin(cluster);
    return loggedIn(conn, await accounts.login(params, from(conn)));
  },

  "auth.resume": async (params, conn, { accounts, calls, cluster }) => {
    admitLogin(cluster);
    const result = loggedIn(conn, await accounts.resume(params.token, from(conn)));
    // The calls this device kept through a lost connection, taken back within the grace period.
    const device = conn.identity?.device;
    if (!params.calls || !device) return result;
    return { ...result, calls: await calls.reattach(device, params.calls) };
  },

  "auth.logout": async (params, conn, { accounts }) => {
    const { userId, sessionId } = me(conn);
    conn.deauthenticate();
    await accounts.logout(userId, sessionId, params.allDevices ?? false, from(conn));
    return {};
  },

  "account.get": async (_params, conn, { accounts }) => {
    const row = await accounts.users.byId(me(conn).userId);
    if (!row) throw new ParleyError("SESSION_INVALID");
    return toSelf(row);
  },

  "account.setDisplayName": async (params, conn, { accounts }) =>
    toSelf(await accounts.setDisplayName(me(conn).userId, params.displayName, from(conn))),

  "account.setUsername": async (params, conn, { accounts }) =>
    toSelf(await accounts.setUsername(me(conn).userId, params.username, from(conn))),

  "account.changePassword": async (params, conn, { accounts }) => {
    const { userId, sessionId } = me(conn);
    await accounts.changePassword(userId, sessionId, params.oldPassword, params.newPassword, from(conn));
    return {};
  },

  "account.delete": async (params, conn, { accounts }) => {
    const { userId } = me(conn);
    await accounts.deleteAccount(userId, params.password, from(conn));
    conn.deauthenticate();
    return {};
  },

  "account.sessions": async (_params, conn, { accounts, presence }) => {
    const { userId, sessionId } = me(conn);
    const sessions = await accounts.sessions.ofUser(userId);
    const online = new Set(presence.devicesOf(userId).map((d) => d.sessionId));
    return {
      sessions: sessions.map((s) => ({
        id: s.id,
        deviceName: s.device_name,
        createdAt: s.created_at,
        lastSeenAt: s.last_seen_at,
        expiresAt: s.expires_at,
        current: s.id === sessionId,
        online: online.has(s.id),
      })),
    };
  },

  "presence.set": async (params, conn, { accounts, presence }) => {
    const row = await accounts.setStatus(me(conn).userId, params.status);
    presence.statusChanged(row);
    return toSelf(row);
  },

  "directory.list": async (_params, conn, { presence }) => {
    me(conn);
    return { users: await presence.directory() };
  },

  "phonebook.list": async (_params, conn, { phonebook }) => ({ entries: await phonebook.list(me(conn).userId) }),

  "phonebook.add": (params, conn, { phonebook }) => phonebook.add(me(conn).userId, params.username, params),

  "phonebook.update": (params, conn, { phonebook }) => phonebook.update(me(conn).userId, params.id, params),

  "phonebook.remove": async (params, conn, { phonebook }) => {
    await phonebook.remove(me(conn).userId, params.id);
    return {};
  },

  "call.invite": async (params, conn, { calls }) => ({ call: await calls.invite(me(conn).device, params.to) }),

  "call.add": async (params, conn, { calls }) => ({ call: await calls.add(me(conn).device, params.callId, params.to) }),

  "call.answer": (params, conn, { calls }) => ({ call: calls.answer(me(conn).device, params.callId) }),

  "call.decline": (params, conn, { calls }) => {
    calls.decline(me(conn).device, params.callId);
    return {};
  },

  "call.hangup": (params, conn, { calls }) => {
    calls.hangup(me(conn).device, params.callId);
    return {};
  },

  "call.media": async (params, conn, { calls }) => ({
    sdp: await calls.media(me(conn).device, params.callId, params.sdp),
  }),

  "media.iceServers": (_params, conn, { config }) => ({
    iceServers: config.turn ? turnIceServers(config.turn, me(conn).userId) : [],
  }),

  "call.hold": (params, conn, { calls }) => ({ call: calls.hold(me(conn).device, params.callId) }),

  "call.resume": (params, conn, { calls }) => ({ call: calls.resume(me(conn).device, params.callId) }),

  "call.mute": (params, conn, { calls }) => ({ call: calls.mute(me(conn).device, params.callId, params.muted) }),

  "call.history": async (params, conn, { calls }) => ({
    calls: await calls.history(me(conn).userId, params.limit, params.before),
  }),

  ...OPERATOR_HANDLERS,
};
