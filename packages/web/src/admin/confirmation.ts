/** An operator action waiting for confirmation: what to ask, and what to run once confirmed. */
export interface Confirmation {
  message: string;
  /** Ask for an optional new password (reset password). */
  withPassword?: boolean;
  danger?: boolean;
  /** Runs the action; resolves with the result sentence shown to the operator. */
  run(password: string | undefined): Promise<string>;
}

export type Ask = (confirmation: Confirmation) => void;
