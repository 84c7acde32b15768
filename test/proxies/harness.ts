import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { freePort } from "../../scripts/cluster.js";
import { TOKEN_ENTRIES } from "../helpers/fixtures.js";

// The pieces of the proxy tests: the real server process (it must be SIGTERMed and killed -9),
// and nginx, Caddy and HAProxy as child processes on free ports of 127.0.0.1, each with the
// configuration shipped in deploy/ or with the minimal reverse-proxy configuration its own
// documentation shows.

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Keeps the last lines a child printed, for a failing test to show. */
function capture(child: ChildProcess, lines: string[], tag: string): void {
  for (const s of [child.stdout, child.stderr]) {
    s?.setEncoding("utf8");
    s?.on("data", (d: string) => {
      for (const l of d.split("\n")) if (l !== "") lines.push(`${tag} ${l}`);
      if (lines.length > 200) lines.splice(0, lines.length - 200);
    });
  }
}

/**
 * Sends `signal` and resolves when the child has exited; one that is still there after
 * `graceMs` is killed (Caddy's graceful stop waits for client connections that pooled agents
 * keep open).
 */
async function stopChild(
  child: ChildProcess | undefined,
  signal: NodeJS.Signals,
  graceMs = 5000,
): Promise<void> {
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  child.kill(signal);
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
}

/** The server process (dist/main.js) on a port of its own, which it keeps across restarts. */
export interface Backend {
  readonly port: number;
  readonly url: string;
  readonly output: string[];
  /** Starts it (again); resolves once /readyz answers 200. */
  start(): Promise<void>;
  /** SIGTERM; resolves when it has exited. */
  stop(): Promise<void>;
  /** SIGKILL; resolves when it is gone. */
  kill(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The server's entry point: this checkout's build, or EVENTS_SERVER_MAIN (another build's
 * dist/main.js, e.g. an older one, to see how it did behind the same proxies).
 */
const SERVER_MAIN = process.env.EVENTS_SERVER_MAIN ?? join(ROOT, "dist/main.js");

export async function startBackend(env: Record<string, string> = {}): Promise<Backend> {
  const dir = mkdtempSync(join(tmpdir(), "events-proxies-"));
  const tokensFile = join(dir, "tokens.json");
  writeFileSync(tokensFile, JSON.stringify({ tokens: TOKEN_ENTRIES }));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const output: string[] = [];
  let child: ChildProcess | undefined;
  const backend: Backend = {
    port,
    url,
    output,
    async start() {
      child = spawn(process.execPath, [SERVER_MAIN], {
        cwd: ROOT,
        env: {
          PATH: process.env.PATH ?? "",
          HOST: "127.0.0.1",
          PORT: String(port),
          AUTH_TOKENS_FILE: tokensFile,
          DATA_DIR: join(dir, "data"),
          LOG_LEVEL: "warn",
          SHUTDOWN_TIMEOUT_MS: "3000",
          SHUTDOWN_DRAIN_MS: "300",
          ...env,
        },
        stdio: ["ignore", "pipe", "pipe"],
      });
      capture(child, output, "[server]");
      await until("the server to be ready", async () => {
        const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(1000) });
        return res.status === 200;
      });
    },
    stop: () => stopChild(child, "SIGTERM"),
    kill: () => stopChild(child, "SIGKILL"),
    async close() {
      await stopChild(child, "SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await backend.start();
  return backend;
}

/** Which configuration a proxy runs with. */
export type ProxyConfig = "shipped" | "default";

export interface ProxyProcess {
  /** e.g. "nginx (deploy/nginx.conf)". */
  readonly name: string;
  readonly product: "nginx" | "caddy" | "haproxy";
  readonly config: ProxyConfig;
  /** HTTP/1.1 clients (JSONL, Connect, gRPC-Web). */
  readonly url: string;
  /** gRPC clients (h2c with prior knowledge), where the configuration has a way for them. */
  readonly h2cUrl: string | undefined;
  readonly output: string[];
  close(): Promise<void>;
}

async function listening(url: string): Promise<void> {
  await until(`${url} to answer`, async () => {
    await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) });
    return true;
  });
}

/**
 * nginx with deploy/nginx.conf as it ships, its three addresses replaced (the file goes into
 * nginx's `http` block, here of a configuration of its own with its own prefix and temp dirs),
 * or with the reverse proxy of nginx's own documentation: `location / { proxy_pass …; }`.
 */
export async function startNginx(backend: Backend, config: ProxyConfig): Promise<ProxyProcess> {
  const dir = mkdtempSync(join(tmpdir(), "events-nginx-"));
  const http1 = await freePort();
  const h2c = config === "shipped" ? await freePort() : undefined;
  let site: string;
  if (config === "shipped") {
    const shipped = readFileSync(join(ROOT, "deploy/nginx.conf"), "utf8");
    site = shipped
      .replaceAll("server 127.0.0.1:8080;", `server 127.0.0.1:${backend.port};`)
      .replace("listen 80;", `listen 127.0.0.1:${http1};`)
      .replace("listen 50051 http2;", `listen 127.0.0.1:${h2c} http2;`);
    if (site.includes(":8080;") || site.includes("listen 80;") || site.includes("50051 http2;")) {
      throw new Error("deploy/nginx.conf: an address the test replaces has changed");
    }
  } else {
    site = [
      "server {",
      `    listen 127.0.0.1:${http1};`,
      `    location / { proxy_pass http://127.0.0.1:${backend.port}; }`,
      "}",
    ].join("\n");
  }
  writeFileSync(join(dir, "site.conf"), site);
  const temp = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
    .map((t) => {
      mkdirSync(join(dir, t));
      return `    ${t}_temp_path ${join(dir, t)};`;
    })
    .join("\n");
  writeFileSync(
    join(dir, "nginx.conf"),
    [
      "daemon off;",
      "master_process off;",
      `pid ${join(dir, "nginx.pid")};`,
      "error_log stderr warn;",
      "events {}",
      "http {",
      "    access_log off;",
      temp,
      `    include ${join(dir, "site.conf")};`,
      "}",
      "",
    ].join("\n"),
  );
  const output: string[] = [];
  const child = spawn("nginx", ["-p", dir, "-c", join(dir, "nginx.conf")], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  capture(child, output, "[nginx]");
  const url = `http://127.0.0.1:${http1}`;
  await listening(url);
  return {
    name: config === "shipped" ? "nginx (deploy/nginx.conf)" : "nginx (documented default)",
    product: "nginx",
    config,
    url,
    h2cUrl: h2c === undefined ? undefined : `http://127.0.0.1:${h2c}`,
    output,
    async close() {
      await stopChild(child, "SIGTERM", 2000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Caddy with deploy/Caddyfile as it ships (addresses from the environment), or with the reverse
 * proxy of Caddy's own documentation: a site with `reverse_proxy` and nothing else. Either way
 * with its admin endpoint off and its storage in a folder of its own.
 */
export async function startCaddy(backend: Backend, config: ProxyConfig): Promise<ProxyProcess> {
  const dir = mkdtempSync(join(tmpdir(), "events-caddy-"));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let file = join(ROOT, "deploy/Caddyfile");
  if (config === "default") {
    file = join(dir, "Caddyfile");
    writeFileSync(
      file,
      `{\n\tadmin off\n}\n\n${url} {\n\treverse_proxy 127.0.0.1:${backend.port}\n}\n`,
    );
  }
  const output: string[] = [];
  const child = spawn("caddy", ["run", "--config", file, "--adapter", "caddyfile"], {
    env: {
      PATH: process.env.PATH ?? "",
      HOME: dir,
      XDG_CONFIG_HOME: dir,
      XDG_DATA_HOME: dir,
      EVENTS_LISTEN: url,
      EVENTS_SERVER: `127.0.0.1:${backend.port}`,
      CADDY_ADMIN: "off",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  capture(child, output, "[caddy]");
  await listening(url);
  return {
    name: config === "shipped" ? "Caddy (deploy/Caddyfile)" : "Caddy (documented default)",
    product: "caddy",
    config,
    url,
    // The shipped file turns on h2c on the same port; Caddy's default has none.
    h2cUrl: config === "shipped" ? url : undefined,
    output,
    async close() {
      await stopChild(child, "SIGTERM", 2000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * HAProxy with deploy/haproxy.cfg as it ships: its three replicas all point at the one server
 * (three `server` lines for one address), so a drain takes all three out.
 */
export async function startHaproxy(backend: Backend): Promise<ProxyProcess> {
  const port = await freePort();
  const address = `127.0.0.1:${backend.port}`;
  const output: string[] = [];
  const child = spawn("haproxy", ["-db", "-f", join(ROOT, "deploy/haproxy.cfg")], {
    env: {
      PATH: process.env.PATH ?? "",
      LB_BIND: `127.0.0.1:${port}`,
      REPLICA_1: address,
      REPLICA_2: address,
      REPLICA_3: address,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  capture(child, output, "[haproxy]");
  const url = `http://127.0.0.1:${port}`;
  // Up once its checks passed (rise 2): until then it answers 503.
  await until("HAProxy to route to the server", async () => {
    const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(1000) });
    return res.status === 200;
  });
  return {
    name: "HAProxy (deploy/haproxy.cfg)",
    product: "haproxy",
    config: "shipped",
    url,
    h2cUrl: url,
    output,
    async close() {
      await stopChild(child, "SIGTERM", 2000);
    },
  };
}

/** Resolves once `url`/readyz answers 200 through the proxy (after a restart of the server). */
export function routesAgain(proxy: ProxyProcess): Promise<void> {
  return until(`${proxy.name} to route to the server again`, async () => {
    const res = await fetch(`${proxy.url}/readyz`, { signal: AbortSignal.timeout(1000) });
    return res.status === 200;
  });
}
