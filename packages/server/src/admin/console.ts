import readline from "node:readline";
import type { AdminCommands } from "./admin-commands.js";
import { splitCommandLine } from "./table.js";

/** The operator console on the server's own terminal: one command per line on stdin. */
export function startConsole(
  commands: AdminCommands,
  input: NodeJS.ReadableStream,
  output: NodeJS.WritableStream,
): () => void {
  const rl = readline.createInterface({ input, output, prompt: "parley> ", terminal: false });
  // Commands run one after another so their output never interleaves.
  let queue = Promise.resolve();
  rl.on("line", (line) => {
    const words = splitCommandLine(line.trim());
    queue = queue.then(async () => {
      if (words.length > 0) {
        const result = await commands.run(words, "console");
        output.write(`${result.output}\n`);
      }
      rl.prompt();
    });
  });
  rl.prompt();
  return () => rl.close();
}
