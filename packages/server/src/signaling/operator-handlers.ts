import { type OperatorRequests, ParleyError } from "@parley/protocol";
import { auditOrigin } from "../audit/audit-log.js";
import type { Services } from "../services.js";
import type { Connection } from "./connection.js";
import type { Handler } from "./handler.js";

type OperatorRequestType = keyof typeof OperatorRequests;

/**
 * The operator's identity for an `operator.*` request: the connection must be logged in
 * (NOT_AUTHENTICATED) as an enabled operator (NOT_OPERATOR), checked against the database on
 * every request so a revoke takes effect at once. Returns the operator's username, the actor in
 * the audit log.
 */
function operatorOf(conn: Connection, { operator }: Services): Promise<string> {
  const identity = conn.identity;
  if (!identity) throw new ParleyError("NOT_AUTHENTICATED");
  return operator.requireOperator(identity.userId);
}

/**
 * Runs an action as the operator, every audit entry it writes tagged with the operator's address,
 * then has the live pages show its effect at once.
 */
async function act<R>(conn: Connection, services: Services, action: (actor: string) => Promise<R> | R): Promise<R> {
  const result = await auditOrigin.run({ address: conn.address }, async () => action(await operatorOf(conn, services)));
  services.operatorFeed.refreshSoon();
  return result;
}

/**
 * The web operator page's requests: thin adapters onto OperatorService, whose operations the
 * console and `parley admin` text commands call as well (one implementation of each).
 */
export const OPERATOR_HANDLERS: { [T in OperatorRequestType]: Handler<T> } = {
  "operator.snapshot": async (_params, conn, services) => {
    await operatorOf(conn, services);
    return services.operator.snapshot();
  },

  "operator.subscribe": async (_params, conn, services) => {
    await operatorOf(conn, services);
    services.operatorFeed.subscribe(conn.identity!.device);
    return services.operator.snapshot();
  },

  "operator.unsubscribe": async (_params, conn, services) => {
    await operatorOf(conn, services);
    services.operatorFeed.unsubscribe(conn.identity!.device);
    return {};
  },

  "operator.kick": (params, conn, services) =>
    act(conn, services, async (actor) => ({ devices: (await services.operator.kick(params.username, actor)).devices })),

  "operator.setDisabled": (params, conn, services) =>
    act(conn, services, async (actor) => ({
      user: await services.operator.setDisabled(params.username, params.disabled, actor),
    })),

  "operator.resetPassword": async (params, conn, services) => {
    const reset = await act(conn, services, (actor) =>
      services.operator.resetPassword(params.username, params.password, actor),
    );
    return { password: reset.generated };
  },

  "operator.setOperator": (params, conn, services) =>
    act(conn, services, async (actor) => ({
      user: await services.operator.setOperator(params.username, params.operator, actor),
    })),

  "operator.endCall": (params, conn, services) =>
    act(conn, services, async (actor) => {
      // The page names calls by their full id: no prefix matching here.
      await services.operator.endCall(params.callId, actor, { exact: true });
      return {};
    }),

  "operator.setSignup": (params, conn, services) =>
    act(conn, services, async (actor) => ({ enabled: await services.operator.setSignup(params.enabled, actor) })),

  "operator.audit": async (params, conn, services) => {
    await operatorOf(conn, services);
    return { entries: await services.operator.audit(params) };
  },

  "operator.callHistory": async (params, conn, services) => {
    await operatorOf(conn, services);
    return { calls: await services.operator.callHistory(params) };
  },
};
