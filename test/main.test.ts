import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill("SIGKILL");
});

/** Keeps `child` for the clean-up and collects what it prints (stdout and stderr). */
function tracked(child: ChildProcess): ChildProcess & { output: () => string } {
  children.push(child);
  let output = "";
  child.stdout?.on("data", (d: Buffer) => {
    output += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    output += d.toString();
  });
  return Object.assign(child, { output: () => output });
}

async function exitOf(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode;
  const [code] = await once(child, "exit");
  return code as number | null;
}

/** Runs the real server process with exactly `env` (plus PATH). */
function run(env: Record<string, string>): ChildProcess & { output: () => string } {
  return tracked(
    spawn(process.execPath, ["dist/main.js"], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    }),
  );
}

function sh(command: string): ChildProcess & { output: () => string } {
  return tracked(spawn("bash", ["-c", command], { stdio: ["ignore", "pipe", "pipe"] }));
}

describe("the server process", () => {
  it("refuses to start in production without a token source, saying what to set", async () => {
    const child = run({ NODE_ENV: "production", PORT: "0" });
    expect(await exitOf(child)).toBe(78);
    expect(child.output()).toContain("AUTH_TOKENS_FILE");
  });

  it("lists every invalid setting at once", async () => {
    const child = run({ PORT: "http", SHUTDOWN_TIMEOUT_MS: "-1", LOG_LEVEL: "loud" });
    expect(await exitOf(child)).toBe(78);
    const out = child.output();
    for (const name of ["PORT", "SHUTDOWN_TIMEOUT_MS", "LOG_LEVEL"]) expect(out).toContain(name);
  });

  it("refuses a missing token file, naming it", async () => {
    const child = run({
      AUTH_TOKENS_FILE: "/nonexistent/tokens.json",
      PORT: "0",
    });
    expect(await exitOf(child)).toBe(78);
    expect(child.output()).toContain("/nonexistent/tokens.json");
  });

  it("in dev mode prints working example commands, and exits cleanly on SIGTERM, aborting streams", async () => {
    const server = run({ PORT: "0", SHUTDOWN_TIMEOUT_MS: "3000" });
    await expect.poll(() => server.output(), { timeout: 10_000 }).toContain("Publish");
    const out = server.output();
    expect(out).toMatch(/"host":"127\.0\.0\.1"/);
    const lines = out.split("\n");
    const command = (after: string) => {
      const i = lines.findIndex((l) => l.startsWith(after));
      const cmd: string[] = [];
      for (let j = i + 1; j < lines.length; j++) {
        const l = (lines[j] as string).trim();
        cmd.push(l.replace(/\\$/, ""));
        if (!l.endsWith("\\")) break;
      }
      return cmd.join(" ");
    };
    const watch = sh(command("Watch"));
    const publish = command("Publish");
    // Publish until the watch has seen it: the watch may still be connecting.
    await expect
      .poll(
        async () => {
          await once(sh(publish), "exit");
          return watch.output();
        },
        { timeout: 10_000 },
      )
      .toContain('"operation":"RESOURCE_OPERATION_CREATE"');
    server.kill("SIGTERM");
    expect(await exitOf(server)).toBe(0);
    // curl exits non-zero when the stream is cut without its last chunk.
    expect(await exitOf(watch)).not.toBe(0);
  });

  it("leaves the console out of the dev banner when CONSOLE=off", async () => {
    const server = run({ PORT: "0", CONSOLE: "off" });
    await expect.poll(() => server.output(), { timeout: 10_000 }).toContain("Publish");
    expect(server.output()).not.toContain("/console/");
    server.kill("SIGINT");
    expect(await exitOf(server)).toBe(0);
  });

  it("after SIGTERM keeps its port open for SHUTDOWN_DRAIN_MS, answering /readyz 503 with Retry-After, then exits", async () => {
    const server = run({ PORT: "0", SHUTDOWN_DRAIN_MS: "1500", SHUTDOWN_TIMEOUT_MS: "5000" });
    await expect.poll(() => server.output(), { timeout: 10_000 }).toContain("Publish");
    const port = /"port":(\d+)/.exec(server.output())?.[1];
    const url = `http://127.0.0.1:${port}`;
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    const killedAt = performance.now();
    server.kill("SIGTERM");
    await expect
      .poll(async () => (await fetch(`${url}/readyz`)).status, { timeout: 1000, interval: 20 })
      .toBe(503);
    const res = await fetch(`${url}/readyz`);
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("1");
    expect(await res.text()).toBe("draining\n");
    expect(await exitOf(server)).toBe(0);
    expect(performance.now() - killedAt).toBeGreaterThanOrEqual(1400);
    await expect(fetch(`${url}/readyz`)).rejects.toThrow();
  });

  it("runs with the same node options under npm start, npm run serve and in the Docker image", () => {
    const pkg = JSON.parse(readFileSync(`${ROOT}/package.json`, "utf8")) as {
      scripts: { start: string; serve: string };
    };
    const fromStart = /\bnode((?: --\S+)*) dist\/main\.js/.exec(pkg.scripts.start)?.[1];
    const fromServe = /^node((?: --\S+)*) dist\/main\.js$/.exec(pkg.scripts.serve)?.[1];
    expect(fromServe).toBe(fromStart);
    const cmd = /^CMD (\[.*\])$/m.exec(readFileSync(`${ROOT}/Dockerfile`, "utf8"))?.[1];
    const fromDocker = (JSON.parse(cmd ?? "[]") as string[]).slice(1, -1).join(" ");
    expect(fromStart?.trim()).toBe(fromDocker);
    expect(fromDocker).toContain("--max-semi-space-size=");
  });
});
