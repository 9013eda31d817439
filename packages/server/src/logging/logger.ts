import fs from "node:fs";
import path from "node:path";
import { type Logger, multistream, pino } from "pino";

export type { Logger };

/** Structured JSON logs to the data dir's log file and, unless turned off, stdout. */
export function createLogger(options: { file: string; level: string; stdout: boolean }): Logger {
  fs.mkdirSync(path.dirname(options.file), { recursive: true, mode: 0o700 });
  // Owner-only: the log names users and their addresses.
  fs.closeSync(fs.openSync(options.file, "a", 0o600));
  const streams: { stream: NodeJS.WritableStream; level: string }[] = [
    {
      stream: pino.destination({ dest: options.file, sync: true }) as unknown as NodeJS.WritableStream,
      level: options.level,
    },
  ];
  if (options.stdout) streams.push({ stream: process.stdout, level: options.level });
  return pino(
    { level: options.level, base: { service: "parley" }, timestamp: pino.stdTimeFunctions.isoTime },
    multistream(streams),
  );
}
