import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll } from "vitest";
import { SqliteStore } from "./sqlite-store.js";
import type { Store } from "./store.js";
import { describeStoreContract } from "./store-contract.js";

const dir = mkdtempSync(join(tmpdir(), "eventserver-sqlite-"));
const paths = new WeakMap<Store, string>();
let count = 0;

async function openAt(path: string): Promise<Store> {
  const store = await SqliteStore.open({ path });
  paths.set(store, path);
  return store;
}

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describeStoreContract("SqliteStore", () => openAt(join(dir, `store-${++count}.db`)), {
  reopen: (closed) => {
    const path = paths.get(closed);
    if (path === undefined) throw new Error("not a store of this suite");
    return openAt(path);
  },
});
