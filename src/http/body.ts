import type { Readable } from "node:stream";
import { ServiceError } from "../errors.js";

/**
 * Reads a request body whole, refusing more than `maxBytes` (or whatever `check` throws for,
 * given the bytes so far). Unlike `for await`, a refusal leaves the request open instead of
 * destroying it (which on HTTP/2 resets the stream before the refusal can be sent): the caller
 * answers, then ends the request (see `Http2Exchange.respond`).
 */
export function readBody(
  source: Readable,
  maxBytes: number,
  check?: (bytes: Buffer[], length: number) => void,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    const done = (err?: unknown) => {
      source.off("data", onData);
      source.off("end", onEnd);
      source.off("error", onError);
      source.off("close", onClose);
      if (err === undefined) {
        resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, length));
      } else {
        source.pause();
        reject(err);
      }
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      length += chunk.length;
      try {
        if (length > maxBytes) {
          throw new ServiceError("invalid_argument", `request body larger than ${maxBytes} bytes`);
        }
        check?.(chunks, length);
      } catch (err) {
        done(err);
      }
    };
    const onEnd = () => done();
    const onError = (err: unknown) => done(err);
    const onClose = () =>
      done(new ServiceError("canceled", "client went away before sending the request"));
    source.on("data", onData);
    source.on("end", onEnd);
    source.on("error", onError);
    source.on("close", onClose);
  });
}
