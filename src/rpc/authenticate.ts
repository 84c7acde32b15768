import { createContextKey, type HandlerContext } from "@connectrpc/connect";
import type { Authenticator } from "../auth/authenticator.js";
import { toConnectError } from "../errors.js";
import type { Principal } from "../watch/model.js";

const kPrincipal = createContextKey<Principal | undefined>(undefined, {
  description: "the authenticated caller",
});

/**
 * The one authentication step of every call on every path: the streaming edge, the gRPC publish
 * edge and the Connect router (a request gate, which runs before the body is read). Calls to a
 * public service (health) skip it; every other call needs `Authorization: Bearer <token>`.
 */
export interface CallAuthentication {
  /** The caller with this Authorization header; throws ServiceError `unauthenticated`. */
  principal(authorization: string | undefined): Promise<Principal>;
  /** For the Connect router: authenticates and keeps the principal in the call's context. */
  requestGate(ctx: HandlerContext): Promise<void>;
}

export function createCallAuthentication(
  authenticator: Authenticator,
  publicServices: ReadonlySet<string> = new Set(),
): CallAuthentication {
  const principal = (authorization: string | undefined) =>
    authenticator.authenticate(authorization);
  return {
    principal,
    async requestGate(ctx) {
      if (publicServices.has(ctx.service.typeName)) return;
      try {
        ctx.values.set(
          kPrincipal,
          await principal(ctx.requestHeader.get("authorization") ?? undefined),
        );
      } catch (err) {
        throw toConnectError(err);
      }
    },
  };
}

/** The caller of a Connect call; the request gate guarantees one, so its absence is a bug. */
export function principalOf(ctx: HandlerContext): Principal {
  const p = ctx.values.get(kPrincipal);
  if (p === undefined) throw new Error("no principal in context: authentication gate missing");
  return p;
}
