/**
 * States of one signaling connection.
 *
 *   greeting --hello--> anonymous --login/register/resume--> authenticated
 *                          ^                                      |
 *                          +---------------logout-----------------+
 *   any state --close--> closed
 */
export const CONNECTION_STATES = ["greeting", "anonymous", "authenticated", "closed"] as const;
export type ConnectionState = (typeof CONNECTION_STATES)[number];

const ALLOWED: Record<ConnectionState, readonly ConnectionState[]> = {
  greeting: ["anonymous", "closed"],
  anonymous: ["authenticated", "closed"],
  authenticated: ["anonymous", "closed"],
  closed: [],
};

export function canTransition(from: ConnectionState, to: ConnectionState): boolean {
  return ALLOWED[from].includes(to);
}
