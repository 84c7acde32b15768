import type * as http from "node:http";
import type * as http2 from "node:http2";

export type Req = http.IncomingMessage | http2.Http2ServerRequest;
export type Res = http.ServerResponse | http2.Http2ServerResponse;

/**
 * The response methods used here behave alike on HTTP/1.1 and on the HTTP/2 compatibility
 * API, but their TypeScript overloads do not unify; this view lets one code path call them.
 */
export interface ResponseWriter {
  writeHead(status: number, headers: Record<string, string>): unknown;
  write(chunk: Uint8Array): boolean;
  end(chunk?: Uint8Array | string): unknown;
}

export function writer(res: Res): ResponseWriter {
  return res as unknown as ResponseWriter;
}
