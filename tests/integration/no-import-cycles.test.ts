import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";

const ROOT = path.resolve(import.meta.dirname, "../..");
const PACKAGES = path.join(ROOT, "packages");

/** `import … from "./x.js"`, `export … from "../y.js"`, `import "./z.js"` and `import("./w.js")`: relative specifiers only. */
const RELATIVE_IMPORT =
  /(?:^|[\s;])(?:import|export)\s[^'"]*?from\s*['"](\.{1,2}\/[^'"]+)['"]|(?:^|[\s;])import\s*['"](\.{1,2}\/[^'"]+)['"]|\bimport\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g;

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === "node_modules" || entry.name === "dist" ? [] : sourceFiles(full);
    return /\.tsx?$/.test(entry.name) && !entry.name.endsWith(".d.ts") ? [full] : [];
  });
}

/** Each source file with the source files it imports by relative path (type-only imports included). */
function importGraph(srcDir: string): Map<string, string[]> {
  const files = new Set(sourceFiles(srcDir));
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const targets: string[] = [];
    for (const match of fs.readFileSync(file, "utf8").matchAll(RELATIVE_IMPORT)) {
      const base = path.resolve(path.dirname(file), (match[1] ?? match[2] ?? match[3])!);
      const stem = base.replace(/\.(js|jsx|ts|tsx)$/, "");
      const target = [`${stem}.ts`, `${stem}.tsx`, path.join(base, "index.ts")].find((c) => files.has(c));
      if (target) targets.push(target);
    }
    graph.set(file, targets);
  }
  return graph;
}

/** The cycles a depth-first walk meets, each as the chain of files that closes on itself. */
function cycles(graph: Map<string, string[]>): string[][] {
  const state = new Map<string, "open" | "done">();
  const chain: string[] = [];
  const found: string[][] = [];
  const visit = (file: string): void => {
    state.set(file, "open");
    chain.push(file);
    for (const next of graph.get(file) ?? []) {
      if (state.get(next) === "open") found.push([...chain.slice(chain.indexOf(next)), next]);
      else if (!state.has(next)) visit(next);
    }
    chain.pop();
    state.set(file, "done");
  };
  for (const file of graph.keys()) if (!state.has(file)) visit(file);
  return found;
}

const packages = fs
  .readdirSync(PACKAGES)
  .filter((name) => fs.existsSync(path.join(PACKAGES, name, "src")))
  .sort();

describe("The source code's imports", () => {
  it("are read from every package, so the check below sees the real module graph", () => {
    for (const name of ["server", "web", "client", "protocol"]) assert.ok(packages.includes(name), name);
    const server = importGraph(path.join(PACKAGES, "server", "src"));
    const handlers = path.join(PACKAGES, "server", "src", "signaling", "handlers.ts");
    assert.ok(
      server.get(handlers)?.includes(path.join(PACKAGES, "server", "src", "signaling", "operator-handlers.ts")),
    );
    const web = importGraph(path.join(PACKAGES, "web", "src"));
    const app = path.join(PACKAGES, "web", "src", "admin", "operator-app.tsx");
    assert.ok(web.get(app)?.includes(path.join(PACKAGES, "web", "src", "admin", "live-panels.tsx")));
  });

  for (const name of packages) {
    it(`form no cycle inside packages/${name}`, () => {
      const srcDir = path.join(PACKAGES, name, "src");
      const shown = cycles(importGraph(srcDir)).map((cycle) =>
        cycle.map((file) => path.relative(srcDir, file)).join(" -> "),
      );
      assert.deepEqual(shown, [], `import cycles in packages/${name}/src:\n${shown.join("\n")}`);
    });
  }
});
