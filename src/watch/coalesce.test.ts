import { describe, expect, it } from "vitest";
import { coalesce, deliveredOperation, RECREATED } from "./coalesce.js";
import { Operation } from "./model.js";

const { CREATE, UPDATE, DELETE, UPDATE_STATUS } = Operation;
const name = (op: number | undefined): string =>
  op === undefined
    ? "nothing"
    : op === RECREATED
      ? "RECREATED"
      : (Object.entries(Operation).find(([, v]) => v === op)?.[0] ?? String(op));

/** What a watcher receives for a run of operations on one resource, folded left. */
function fold(ops: readonly number[]): number | undefined {
  let state: number | undefined;
  for (const op of ops) state = state === undefined ? op : coalesce(state, op);
  return state === undefined ? undefined : deliveredOperation(state);
}

describe("coalesce", () => {
  // Every pair of wire operations: [pending, next, state, delivered].
  const pairs: [number, number, number | undefined, number | undefined][] = [
    [CREATE, CREATE, CREATE, CREATE],
    [CREATE, UPDATE, CREATE, CREATE],
    [CREATE, UPDATE_STATUS, CREATE, CREATE],
    [CREATE, DELETE, undefined, undefined],
    [UPDATE, CREATE, RECREATED, CREATE],
    [UPDATE, UPDATE, UPDATE, UPDATE],
    [UPDATE, UPDATE_STATUS, UPDATE, UPDATE],
    [UPDATE, DELETE, DELETE, DELETE],
    [UPDATE_STATUS, CREATE, RECREATED, CREATE],
    [UPDATE_STATUS, UPDATE, UPDATE, UPDATE],
    [UPDATE_STATUS, UPDATE_STATUS, UPDATE_STATUS, UPDATE_STATUS],
    [UPDATE_STATUS, DELETE, DELETE, DELETE],
    [DELETE, CREATE, RECREATED, CREATE],
    [DELETE, UPDATE, UPDATE, UPDATE],
    [DELETE, UPDATE_STATUS, UPDATE, UPDATE],
    [DELETE, DELETE, DELETE, DELETE],
  ];

  it("covers every pair of operations", () => {
    const ops = Object.values(Operation);
    expect(pairs).toHaveLength(ops.length * ops.length);
    const covered = pairs.map(([a, b]) => [a, b]);
    for (const a of ops) for (const b of ops) expect(covered).toContainEqual([a, b]);
  });

  it.each(
    pairs.map(([a, b, state, delivered]) => [
      name(a),
      name(b),
      name(state),
      a,
      b,
      state,
      delivered,
    ]),
  )("%s then %s is %s", (_a, _b, _s, a, b, state, delivered) => {
    const result = coalesce(a as number, b as number);
    expect(result).toBe(state);
    expect(result === undefined ? undefined : deliveredOperation(result)).toBe(delivered);
  });

  // A re-created resource is delivered as CREATE, yet a later DELETE must still reach a watcher
  // that knew the old one.
  it.each([
    [CREATE, RECREATED],
    [UPDATE, RECREATED],
    [UPDATE_STATUS, RECREATED],
    [DELETE, DELETE],
  ])("RECREATED then %i is %i", (next, state) => {
    expect(coalesce(RECREATED, next)).toBe(state);
  });

  it.each([
    ["CREATE, UPDATE_STATUS, UPDATE", [CREATE, UPDATE_STATUS, UPDATE], CREATE],
    ["CREATE, UPDATE, UPDATE, UPDATE_STATUS", [CREATE, UPDATE, UPDATE, UPDATE_STATUS], CREATE],
    ["UPDATE, DELETE", [UPDATE, DELETE], DELETE],
    ["CREATE, UPDATE, DELETE", [CREATE, UPDATE, DELETE], undefined],
    ["CREATE, DELETE, CREATE", [CREATE, DELETE, CREATE], CREATE],
    [
      "UPDATE_STATUS, UPDATE_STATUS, UPDATE_STATUS",
      [UPDATE_STATUS, UPDATE_STATUS, UPDATE_STATUS],
      UPDATE_STATUS,
    ],
    ["UPDATE_STATUS, UPDATE, UPDATE_STATUS", [UPDATE_STATUS, UPDATE, UPDATE_STATUS], UPDATE],
    ["DELETE, CREATE, UPDATE", [DELETE, CREATE, UPDATE], CREATE],
    ["DELETE, CREATE, DELETE", [DELETE, CREATE, DELETE], DELETE],
    ["UPDATE, DELETE, CREATE, DELETE", [UPDATE, DELETE, CREATE, DELETE], DELETE],
    ["DELETE, UPDATE_STATUS, UPDATE_STATUS", [DELETE, UPDATE_STATUS, UPDATE_STATUS], UPDATE],
    ["UPDATE, CREATE, DELETE", [UPDATE, CREATE, DELETE], DELETE],
  ])("folds %s into %s", (_, ops, delivered) => {
    expect(fold(ops)).toBe(delivered);
  });

  it("lets the later operation win outside the known operations", () => {
    expect(coalesce(99, UPDATE)).toBe(UPDATE);
    expect(coalesce(UPDATE, 99)).toBe(99);
  });
});
