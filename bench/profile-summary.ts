/**
 * Prints the summary of a .cpuprofile:
 *   node --import tsx bench/profile-summary.ts FILE [TOP] [FROM_END_MS TO_END_MS]
 * With the last two, only samples taken between FROM_END_MS and TO_END_MS before the profile's end count.
 */
import { summarizeProfile } from "./lib/cpuprofile.js";

const [file, top, fromEnd, toEnd] = process.argv.slice(2);
if (!file) {
  console.error("usage: node --import tsx bench/profile-summary.ts FILE.cpuprofile [TOP]");
  process.exit(2);
}
const range = fromEnd && toEnd ? { fromEndMs: Number(fromEnd), toEndMs: Number(toEnd) } : undefined;
const summary = summarizeProfile(file, Number(top ?? 30), range);
console.log(`profile: ${summary.durationMs} ms, busy ${summary.busyMs} ms (${summary.busyPct}%)\n`);
console.log("self time by area (% of busy):");
for (const a of summary.areas) console.log(`  ${String(a.selfPct).padStart(5)}%  ${a.area}`);
console.log("\ntop functions by self time (% of busy, inclusive in brackets):");
for (const f of summary.topSelf) {
  console.log(`  ${String(f.selfPct).padStart(5)}% (${String(f.totalPct).padStart(5)}%)  ${f.function}  ${f.location}`);
}
console.log("\npacket path, inclusive time (% of busy):");
for (const h of summary.hotPaths) console.log(`  ${String(h.totalPct).padStart(5)}%  ${h.function}`);
