import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { publish } from "../helpers/clients.js";
import { ORG_A, TOKENS, uuid } from "../helpers/fixtures.js";
import { startServer, type TestServer } from "../helpers/server.js";

// CONTRACT §11, proven in a real browser: Debian's headless Chromium, driven by playwright-core.
// `.ci/run` installs chromium; elsewhere set CHROMIUM_PATH or `apt-get install chromium`.

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const ROOT = fileURLToPath(new URL("../..", import.meta.url));

let browser: Browser;
let pageDir: string;
beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`no Chromium at ${CHROMIUM}: apt-get install chromium, or set CHROMIUM_PATH`);
  }
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  // The second origin's page: connect-web bundled as a browser app would bundle it.
  pageDir = mkdtempSync(join(tmpdir(), "events-page-"));
  await build({
    entryPoints: [join(ROOT, "test/browser/page.ts")],
    outfile: join(pageDir, "page.js"),
    bundle: true,
    format: "esm",
    logLevel: "warning",
  });
});
afterAll(async () => {
  await browser?.close();
  rmSync(pageDir, { recursive: true, force: true });
});

/** Serves the test page on its own port: another origin than the event server. */
async function pageServer(): Promise<{ origin: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    if (req.url?.startsWith("/page.js")) {
      res.writeHead(200, { "content-type": "text/javascript" });
      res.end(readFileSync(join(pageDir, "page.js")));
      return;
    }
    res.writeHead(200, { "content-type": "text/html" });
    res.end('<!doctype html><title>app</title><script type="module" src="/page.js"></script>');
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

interface PageResult {
  events: string[];
  published: boolean;
  error?: string;
  done: boolean;
}

const resultOf = (page: Page) => page.evaluate("window.result") as Promise<PageResult>;

describe("the console at /console/", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(() => server.close());

  it.each(["connect", "grpcweb"])("shows events as they are published (%s)", async (protocol) => {
    const page = await browser.newPage({ viewport: { width: 1180, height: 760 } });
    try {
      await page.goto(`${server.url}/console/`);
      await page.fill("#token", TOKENS.adminA);
      await page.selectOption("#protocol", protocol);
      await page.click("#start");
      await expect.poll(() => server.bus.subscriberCount, { timeout: 10_000 }).toBe(1);
      const ids = [uuid(), uuid(), uuid()];
      await publish(
        server.url,
        ids.map((id, i) => ({
          resourceType: [3, 2, 1][i] as number,
          operation: [1, 2, 4][i] as number,
          resourceId: id,
          organizationId: ORG_A,
          creatorId: uuid(),
        })),
      );
      for (const id of ids) await page.getByText(id).waitFor({ timeout: 10_000 });
      expect(await page.textContent("#status")).toContain("Watching");
      expect(await page.textContent("#counts")).toContain("PROJECT");
      if (process.env.UPDATE_SCREENSHOT === "1" && protocol === "connect") {
        // docs/console.png for the README: a few more changes of several kinds first.
        const more = [1, 33, 37, 1, 2, 3, 21, 1].map((resourceType, i) => ({
          resourceType,
          operation: [1, 1, 4, 4, 2, 2, 1, 3][i] as number,
          resourceId: uuid(),
          organizationId: ORG_A,
          creatorId: uuid(),
        }));
        for (const e of more) await publish(server.url, [e]);
        await page.getByText(more[more.length - 1]?.resourceId as string).waitFor();
        await page.waitForFunction('document.getElementById("rate").textContent !== "–"');
        await page.screenshot({ path: join(ROOT, "docs/console.png") });
      }
      await page.click("#start"); // Stop
      await expect.poll(() => server.bus.subscriberCount, { timeout: 10_000 }).toBe(0);
    } finally {
      await page.close();
    }
  });
});

describe("a page of another origin, with connect-web", () => {
  for (const protocol of ["connect", "grpcweb"]) {
    it(`watches and publishes when its origin is in CORS_ORIGINS (${protocol})`, async () => {
      const app = await pageServer();
      const server = await startServer({ CORS_ORIGINS: app.origin });
      const page = await browser.newPage();
      try {
        const q = new URLSearchParams({
          server: server.url,
          protocol,
          token: TOKENS.memberA,
          publisher: TOKENS.publisher,
          org: ORG_A,
        });
        await page.goto(`${app.origin}/?${q}`);
        await expect.poll(() => server.bus.subscriberCount, { timeout: 10_000 }).toBe(1);
        const id = uuid();
        await page.evaluate(`window.publish(${JSON.stringify(id)})`);
        await expect
          .poll(async () => (await resultOf(page)).events, { timeout: 10_000 })
          .toEqual([id]);
        expect((await resultOf(page)).error).toBeUndefined();
      } finally {
        await page.close();
        await server.close();
        await app.close();
      }
    });

    it(`fails with a CORS error when its origin is not allowed (${protocol})`, async () => {
      const app = await pageServer();
      const server = await startServer();
      const page = await browser.newPage();
      const consoleErrors: string[] = [];
      page.on("console", (m) => {
        if (m.type() === "error") consoleErrors.push(m.text());
      });
      try {
        const q = new URLSearchParams({
          server: server.url,
          protocol,
          token: TOKENS.memberA,
          publisher: TOKENS.publisher,
          org: ORG_A,
        });
        await page.goto(`${app.origin}/?${q}`);
        await expect.poll(async () => (await resultOf(page)).done, { timeout: 10_000 }).toBe(true);
        const result = await resultOf(page);
        expect(result.events).toEqual([]);
        expect(result.error).toMatch(/fetch|network/i);
        expect(consoleErrors.join("\n")).toMatch(/CORS/);
      } finally {
        await page.close();
        await server.close();
        await app.close();
      }
    });
  }
});
