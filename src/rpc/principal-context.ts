import { createContextKey, type HandlerContext } from "@connectrpc/connect";
import type { Authenticator } from "../auth/authenticator.js";
import { toConnectError } from "../errors.js";
import type { Principal } from "../watch/model.js";

const kPrincipal = createContextKey<Principal | undefined>(undefined, {
  description: "the authenticated caller",
});

/**
 * A Connect request gate: authenticates every call from its headers before the body is read,
 * and keeps the principal in the context for the handler.
 */
export function authenticationGate(authenticator: Authenticator) {
  return async (ctx: HandlerContext): Promise<void> => {
    try {
      const principal = await authenticator.authenticate(
        ctx.requestHeader.get("authorization") ?? undefined,
      );
      ctx.values.set(kPrincipal, principal);
    } catch (err) {
      throw toConnectError(err);
    }
  };
}

/** The caller of this call; the gate guarantees one, so its absence is a bug. */
export function principalOf(ctx: HandlerContext): Principal {
  const p = ctx.values.get(kPrincipal);
  if (p === undefined) throw new Error("no principal in context: authentication gate missing");
  return p;
}
