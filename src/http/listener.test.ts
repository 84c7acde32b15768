import * as http from "node:http";
import * as http2 from "node:http2";
import { afterEach, describe, expect, it } from "vitest";
import { Listener, type ListenerOptions } from "./listener.js";

const LIMITS = {
  headersTimeoutMs: 5000,
  requestTimeoutMs: 0,
  keepAliveTimeoutMs: 5000,
  maxConcurrentStreams: 100,
  h2PingIntervalMs: 0,
  maxHeaderBytes: 16 * 1024,
};

function listenerWith(handlers: Partial<ListenerOptions>): Listener {
  return new Listener({
    onRequest: (_req, res) => res.end(),
    onStream: () => false,
    onCompatRequest: (_req, res) => res.end(),
    ...LIMITS,
    ...handlers,
  });
}

let listener: Listener | undefined;
afterEach(async () => {
  await listener?.close(100);
  listener = undefined;
});

/** The names of a connection's 'timeout' listeners (Node's own HTTP server adds one). */
function timeoutListeners(socket: { listeners(event: string): { name: string }[] }): string[] {
  return socket.listeners("timeout").map((f) => f.name);
}

describe("Listener", () => {
  it("leaves nothing of the sniffing on an HTTP/1.1 connection", async () => {
    let seen: string[] = [];
    listener = listenerWith({
      onRequest: (req, res) => {
        seen = timeoutListeners(req.socket);
        res.end("ok");
      },
    });
    const { port } = await listener.listen(0, "127.0.0.1");
    const body = await new Promise<string>((resolve, reject) => {
      http
        .get({ host: "127.0.0.1", port, path: "/" }, (res) => {
          let text = "";
          res.on("data", (c: Buffer) => {
            text += c.toString();
          });
          res.on("end", () => resolve(text));
        })
        .on("error", reject);
    });
    expect(body).toBe("ok");
    // The sniffing's timeout listener would keep its closure and the first bytes alive for as
    // long as the connection lives (thousands of open JSONL streams).
    expect(seen).not.toContain("onTimeout");
    expect(seen.length).toBeLessThanOrEqual(1);
  });

  it("hands HTTP/2 streams to onStream first, and the rest to the compatibility handler", async () => {
    const paths: string[] = [];
    listener = listenerWith({
      onCompatRequest: (req, res) => {
        paths.push(`compat ${req.url}`);
        res.end();
      },
      onStream: (stream, headers) => {
        if (headers[":path"] !== "/raw") return false;
        paths.push("raw /raw");
        stream.respond({ ":status": 204 }, { endStream: true });
        return true;
      },
    });
    const { port } = await listener.listen(0, "127.0.0.1");
    const session = http2.connect(`http://127.0.0.1:${port}`);
    const status = (path: string) =>
      new Promise<number>((resolve, reject) => {
        const req = session.request({ ":path": path });
        req.on("response", (h) => resolve(Number(h[":status"])));
        req.on("error", reject);
        req.resume();
        req.end();
      });
    expect(await status("/raw")).toBe(204);
    expect(await status("/other")).toBe(200);
    session.close();
    expect(paths).toEqual(["raw /raw", "compat /other"]);
  });

  it("limits headers to 16 KiB on HTTP/2 as on HTTP/1.1: 431 above, served below", async () => {
    listener = listenerWith({
      onStream: (stream) => {
        stream.respond({ ":status": 204 }, { endStream: true });
        return true;
      },
      onRequest: (_req, res) => {
        res.statusCode = 204;
        res.end();
      },
    });
    const { port } = await listener.listen(0, "127.0.0.1");
    const session = http2.connect(`http://127.0.0.1:${port}`);
    // Above the limit: 431, or, once the client has the server's SETTINGS, nghttp2's own reset
    // (ENHANCE_YOUR_CALM) before the stream reaches the server: refused either way.
    const h2 = (bytes: number) =>
      new Promise<number | string>((resolve) => {
        const req = session.request({ ":path": "/", "x-big": "a".repeat(bytes) });
        req.on("response", (h) => resolve(Number(h[":status"])));
        req.on("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
        req.resume();
        req.end();
      });
    const refused = [431, "ERR_HTTP2_STREAM_ERROR"];
    const h1 = (bytes: number) =>
      new Promise<number>((resolve, reject) => {
        const req = http.request(
          { port, host: "127.0.0.1", path: "/", headers: { "x-big": "a".repeat(bytes) } },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on("error", reject);
        req.end();
      });
    expect(refused).toContain(await h2(60 * 1024));
    expect(refused).toContain(await h2(17 * 1024));
    expect(await h2(8 * 1024)).toBe(204);
    expect(await h1(60 * 1024)).toBe(431);
    expect(await h1(8 * 1024)).toBe(204);
    session.close();
  });

  it("closes an HTTP/2 connection without open streams after h2IdleTimeoutMs, never one with a stream", async () => {
    let held: http2.ServerHttp2Stream | undefined;
    listener = listenerWith({
      h2IdleTimeoutMs: 200,
      onStream: (stream, headers) => {
        if (headers[":path"] === "/hold") {
          held = stream;
          stream.respond({ ":status": 200 });
          return true;
        }
        stream.respond({ ":status": 204 }, { endStream: true });
        return true;
      },
    });
    const { port } = await listener.listen(0, "127.0.0.1");
    const idle = http2.connect(`http://127.0.0.1:${port}`);
    idle.on("error", () => {});
    const busy = http2.connect(`http://127.0.0.1:${port}`);
    busy.on("error", () => {});
    const stream = busy.request({ ":path": "/hold" });
    stream.on("error", () => {});
    stream.resume();
    await new Promise((resolve) => stream.once("response", resolve));
    // The idle one goes (GOAWAY, then the socket); the one with a stream stays past the timeout.
    await new Promise((resolve) => idle.once("close", resolve));
    await expect.poll(() => listener?.http2SessionCount).toBe(1);
    expect(busy.closed).toBe(false);
    held?.end();
    await new Promise((resolve) => busy.once("close", resolve));
    await expect.poll(() => listener?.http2SessionCount).toBe(0);
  });
});
