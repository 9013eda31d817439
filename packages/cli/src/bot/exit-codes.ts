import type { CallOutcome } from "@parley/protocol";

/** How a bot's call ended, as its process exit code. */
export const BotExit = {
  /** The call was answered and ended normally (either side hung up, or --duration elapsed). */
  COMPLETED: 0,
  /** Bad options, cannot connect or log in. */
  ERROR: 1,
  DECLINED: 2,
  BUSY: 3,
  NO_ANSWER: 4,
  UNREACHABLE: 5,
  CANCELLED: 6,
  /** Connection or media lost, ended by the operator or the server, or no call arrived in time. */
  FAILED: 7,
} as const;

export function exitCodeFor(outcome: CallOutcome, reason: string): number {
  if (outcome === "answered") return reason === "hangup" ? BotExit.COMPLETED : BotExit.FAILED;
  switch (outcome) {
    case "declined":
      return BotExit.DECLINED;
    case "busy":
      return BotExit.BUSY;
    case "no_answer":
      return BotExit.NO_ANSWER;
    case "unreachable":
      return BotExit.UNREACHABLE;
    case "cancelled":
      return BotExit.CANCELLED;
    default:
      return BotExit.FAILED;
  }
}
