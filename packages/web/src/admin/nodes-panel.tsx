import type { OperatorSnapshot } from "@parley/protocol";
import { useId } from "react";
import { useAdminI18n } from "./admin-i18n.js";

/** In a cluster (`--redis`): the live nodes with their loads, this one first. Nothing on a single server. */
export function NodesPanel({ snapshot }: { snapshot: OperatorSnapshot }) {
  const { t } = useAdminI18n();
  const headingId = useId();
  const nodes = snapshot.nodes;
  if (!nodes) return null;
  return (
    <section className="card" aria-labelledby={headingId}>
      <div className="card__header">
        <h2 id={headingId}>
          {t("clusterNodes")} <span className="count-badge">{nodes.length}</span>
        </h2>
      </div>
      <div className="table-wrap">
        <table className="operator__table">
          <thead>
            <tr>
              <th scope="col">{t("node")}</th>
              <th scope="col">{t("mediaAddress")}</th>
              <th scope="col">{t("nodeStarted")}</th>
              <th scope="col">{t("nodeHeartbeat")}</th>
              <th scope="col">{t("nodeUsers")}</th>
              <th scope="col">{t("calls")}</th>
              <th scope="col">{t("mediaLegs")}</th>
            </tr>
          </thead>
          <tbody>
            {nodes.map((node) => (
              <tr key={node.id} data-testid="cluster-node" data-node={node.id} data-self={String(node.self)}>
                <td>
                  <code title={node.id}>{node.id.slice(0, 8)}</code>
                  {node.self ? <span className="tag">{t("thisNode")}</span> : null}
                </td>
                <td>
                  <code>{node.mediaAddress}</code>
                </td>
                <td>{new Date(node.startedAt).toLocaleString()}</td>
                <td>{new Date(node.heartbeatAt).toLocaleTimeString()}</td>
                <td data-testid="node-users">{node.load.users}</td>
                <td data-testid="node-calls">{node.load.calls}</td>
                <td data-testid="node-legs">{node.load.legs}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}
