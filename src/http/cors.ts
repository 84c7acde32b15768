import { cors as connectCors } from "@connectrpc/connect";

/** How long browsers may cache a preflight's answer, in seconds. */
const PREFLIGHT_MAX_AGE_S = 7200;

/**
 * Which browser origins may call the server (CORS_ORIGINS): a list, or `*` for any. One policy
 * for every path: fastify answers preflights (`@fastify/cors`, with `fastifyOptions`) and adds
 * the headers to its responses; the streaming edges add `responseHeaders` to theirs. The
 * methods and headers are the ones connect-es lists for Connect, gRPC-Web and Connect GET,
 * plus Authorization.
 */
export class CorsPolicy {
  private readonly any: boolean;
  private readonly allowed: ReadonlySet<string>;
  readonly allowedMethods = [...connectCors.allowedMethods];
  readonly allowedHeaders = [...connectCors.allowedHeaders, "Authorization"];
  readonly exposedHeaders = [...connectCors.exposedHeaders];
  private readonly exposed: string;

  constructor(origins: readonly string[]) {
    this.any = origins.includes("*");
    this.allowed = new Set(origins.map((o) => o.toLowerCase()));
    this.exposed = this.exposedHeaders.join(", ");
  }

  /** No origin is allowed: no CORS headers at all. */
  get disabled(): boolean {
    return this.allowed.size === 0;
  }

  isAllowed(origin: string | undefined): boolean {
    return origin !== undefined && (this.any || this.allowed.has(origin.toLowerCase()));
  }

  /** Headers for the actual (not preflight) response to a request from `origin`. */
  responseHeaders(origin: string | undefined): Record<string, string> | undefined {
    if (this.disabled) return undefined;
    if (this.any) {
      return { "access-control-allow-origin": "*", "access-control-expose-headers": this.exposed };
    }
    if (!this.isAllowed(origin)) return { vary: "Origin" };
    return {
      "access-control-allow-origin": origin as string,
      "access-control-expose-headers": this.exposed,
      vary: "Origin",
    };
  }

  /** The same policy as `@fastify/cors` options. */
  get fastifyOptions() {
    return {
      origin: this.any
        ? "*"
        : (origin: string | undefined, cb: (e: null, ok: boolean) => void) =>
            cb(null, this.isAllowed(origin)),
      methods: this.allowedMethods,
      allowedHeaders: this.allowedHeaders,
      exposedHeaders: this.exposedHeaders,
      maxAge: PREFLIGHT_MAX_AGE_S,
    };
  }
}
