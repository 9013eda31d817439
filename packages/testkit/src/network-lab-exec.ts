import { execFileSync, spawn } from "node:child_process";

/** A network lab step failed: `code` says which kind, the message names the command and its stderr. */
export class NetworkLabError extends Error {
  constructor(
    readonly code: "command_failed" | "no_free_subnet" | "bad_input" | "closed" | "unsupported",
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "NetworkLabError";
  }
}

/** The kernel (or the tools) lack what an impairment needs; `feature` names it, e.g. `sch_netem`. */
export class LabUnsupportedError extends NetworkLabError {
  constructor(
    readonly feature: string,
    message: string,
  ) {
    super("unsupported", message);
    this.name = "LabUnsupportedError";
  }
}

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `command args` to completion (stdin from `input` when given), never throwing for its exit code. */
export function runCommand(command: string, args: string[], input?: string): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    // A command that exits without reading its input must not turn into an EPIPE error here.
    child.stdin.on("error", () => {});
    child.stdin.end(input);
  });
}

/** Runs `command args` and returns its stdout; a non-zero exit throws a NetworkLabError with the stderr. */
export async function mustRun(command: string, args: string[], input?: string): Promise<string> {
  const result = await runCommand(command, args, input);
  if (result.code !== 0) {
    const detail = (result.stderr || result.stdout).trim();
    throw new NetworkLabError("command_failed", `${[command, ...args].join(" ")} failed (${result.code}): ${detail}`);
  }
  return result.stdout;
}

/** Synchronous run for probes and exit-time cleanup: stdout, or undefined when the command failed. */
export function runSync(command: string, args: string[], input?: string): string | undefined {
  try {
    return execFileSync(command, args, {
      encoding: "utf8",
      input,
      stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
  } catch {
    return undefined;
  }
}
