import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from "vitest";
import { project, publish } from "../helpers/clients.js";
import { TOKENS, uuid } from "../helpers/fixtures.js";
import {
  type Backend,
  type ProxyProcess,
  startBackend,
  startCaddy,
  startHaproxy,
  startNginx,
} from "./harness.js";
import { type KindWatch, kindsFor } from "./kinds.js";

// CONTRACT §14: streams outlive each proxy's default idle timeout (nginx: 60 s between two
// reads) with the shipped configurations; with the defaults, a stream the proxy cuts ends with
// an error, never silently. Every kind through every proxy idles at once, with the server's
// default keep-alives (JSONL every 15 s, HTTP/2 PINGs every 30 s), so the suite waits once.

/** Longer than nginx's default proxy_read_timeout (60 s), the shortest default here. */
const IDLE_MS = 75_000;

describe("idle streams through every proxy", () => {
  let backend: Backend;
  const proxies: ProxyProcess[] = [];
  beforeAll(async () => {
    backend = await startBackend();
    proxies.push(
      await startNginx(backend, "shipped"),
      await startNginx(backend, "default"),
      await startCaddy(backend, "shipped"),
      await startCaddy(backend, "default"),
      await startHaproxy(backend),
    );
  });
  afterAll(async () => {
    for (const p of proxies) await p.close();
    await backend?.close();
  });

  it(`keep every kind open for ${IDLE_MS / 1000} s with the shipped configurations; with the defaults, never end one silently`, async () => {
    const watches: [ProxyProcess, KindWatch][] = proxies.flatMap((p) =>
      kindsFor(p).map((k) => [p, k.open(p, TOKENS.memberA)] as [ProxyProcess, KindWatch]),
    );
    onTestFailed(() => {
      process.stdout.write(
        `${watches
          .map(
            ([p, w]) =>
              `${p.name} / ${w.kind.name}: ${w.end?.kind ?? "open"} ${w.end?.detail ?? ""}`,
          )
          .join("\n")}\n`,
      );
    });
    try {
      await Promise.all(watches.map(([, w]) => w.headersAfterMs()));
      const openedAt = performance.now();
      // The point of the test is the silence itself: nothing is published meanwhile.
      await sleep(IDLE_MS);
      const id = uuid();
      await publish(backend.url, [project(id)]);
      const shipped = watches.filter(([p]) => p.config === "shipped");
      await expect
        .poll(
          () =>
            shipped
              .filter(([, w]) => !w.ids.includes(id))
              .map(([p, w]) => `${p.name} / ${w.kind.name}: ${w.end?.kind ?? "open"}`),
          { timeout: 5000 },
        )
        .toEqual([]);
      expect(performance.now() - openedAt).toBeGreaterThanOrEqual(IDLE_MS);
      // What the defaults did, for the record (docs/proxies.md).
      process.stdout.write(
        `${watches
          .filter(([p]) => p.config === "default")
          .map(
            ([p, w]) =>
              `idle ${p.name} / ${w.kind.name}: ${w.end === undefined ? "open, got the event" : `${w.end.kind} (${w.end.detail})`}`,
          )
          .join("\n")}\n`,
      );
      for (const [p, w] of watches) {
        if (p.config === "shipped") expect(w.end, `${p.name} / ${w.kind.name}`).toBeUndefined();
        // A default configuration may cut an idle stream; its client must know.
        else expect(w.end?.kind, `${p.name} / ${w.kind.name}: ${w.end?.detail}`).not.toBe("clean");
      }
    } finally {
      for (const [, w] of watches) w.close();
    }
  }, 150_000);
});
