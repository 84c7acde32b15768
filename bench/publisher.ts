import * as http2 from "node:http2";

const PUBLISH_PATH = "/eventservice.ingest.v1.IngestService/Publish";

/**
 * Unary gRPC Publish calls over one node:http2 connection, with pre-encoded request frames.
 * Publishes are few (a batch of 100 events is 100 to 100,000 deliveries), so node:http2's
 * per-call cost does not matter here.
 */
export class Publisher {
  private readonly session: http2.ClientHttp2Session;
  private readonly headers: http2.OutgoingHttpHeaders;
  /** Calls that failed, by reason (grpc-status or error message). */
  readonly failures = new Map<string, number>();
  /** Calls the server accepted (grpc-status 0). */
  accepted = 0;

  constructor(host: string, port: number, token: string) {
    this.session = http2.connect(`http://${host}:${port}`);
    this.session.on("error", () => {}); // each call reports its own failure
    this.headers = {
      ":method": "POST",
      ":path": PUBLISH_PATH,
      "content-type": "application/grpc",
      te: "trailers",
      authorization: `Bearer ${token}`,
    };
  }

  /** Resolves true when the server answered grpc-status 0; false (and counts why) otherwise. */
  publish(frame: Buffer, timeoutMs = 30_000): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      let status: string | undefined;
      let settled = false;
      const done = (ok: boolean, reason: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (ok) this.accepted++;
        else this.failures.set(reason, (this.failures.get(reason) ?? 0) + 1);
        resolve(ok);
      };
      let req: http2.ClientHttp2Stream;
      try {
        req = this.session.request(this.headers);
      } catch (err) {
        done(false, (err as Error).message);
        return;
      }
      const timer = setTimeout(() => {
        req.close(http2.constants.NGHTTP2_CANCEL);
        done(false, "timeout");
      }, timeoutMs);
      req.on("response", (h) => {
        if (h["grpc-status"] !== undefined) status = String(h["grpc-status"]);
      });
      req.on("trailers", (h) => {
        if (h["grpc-status"] !== undefined) status = String(h["grpc-status"]);
      });
      req.on("data", () => {});
      req.on("error", (err) => done(false, err.message));
      req.on("close", () =>
        done(status === "0", status === undefined ? "no grpc-status" : `grpc-status ${status}`),
      );
      req.end(frame);
    });
  }

  close(): void {
    this.session.destroy();
  }
}
