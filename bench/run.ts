import { mkdirSync, writeFileSync } from "node:fs";
import { runDispatch } from "./dispatch.js";

/**
 * The benchmark harness entry point (`npm run bench [-- --quick]`). Not part of `npm test`:
 * figures are printed and written to bench/results/latest.json, never asserted.
 */
const quick = process.argv.includes("--quick");

const dispatch = await runDispatch({ quick });
const base = dispatch[0]?.nsPerEvent ?? 1;
console.log("\nDispatch scaling (in process): publish cost of one event received by 10 watchers");
console.log("idle watchers of other orgs | ns per event | relative to none");
for (const r of dispatch) {
  console.log(
    `${String(r.idleWatchers).padStart(27)} | ${r.nsPerEvent.toFixed(0).padStart(12)} | ${(r.nsPerEvent / base).toFixed(2)}`,
  );
}
const results = { date: new Date().toISOString(), node: process.version, quick, dispatch };
mkdirSync(new URL("./results/", import.meta.url), { recursive: true });
writeFileSync(
  new URL("./results/latest.json", import.meta.url),
  `${JSON.stringify(results, null, 2)}\n`,
);
