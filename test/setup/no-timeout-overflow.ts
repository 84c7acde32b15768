import { afterAll } from "vitest";

// Node's timers hold at most 2^31-1 ms: a longer delay fires after 1 ms instead, with a
// TimeoutOverflowWarning. Some timer somewhere then fires ~25 days early (a client deadline that
// ends a stream at once, say), so any such warning fails the test file that caused it.

const warnings: string[] = [];
const onWarning = (warning: Error) => {
  if (warning.name === "TimeoutOverflowWarning") warnings.push(warning.message);
};
process.on("warning", onWarning);

afterAll(() => {
  process.off("warning", onWarning);
  if (warnings.length > 0) {
    throw new Error(
      `TimeoutOverflowWarning emitted ${warnings.length} time(s) during this file: ${warnings.join(" | ")}`,
    );
  }
});
