import type { Principal } from "../watch/model.js";

/**
 * Turns the bearer token of a request into a principal, or throws ServiceError
 * `unauthenticated`. Sources can revoke credentials while streams that used them are open.
 */
export interface Authenticator {
  /** `authorization` is the raw header value (or undefined when missing). */
  authenticate(authorization: string | undefined): Promise<Principal>;
  /**
   * Whether `principal`'s credential is still valid now: not removed or changed in its source
   * since it was authenticated, not expired. Synchronous, so that a caller that checks it and
   * registers a stream (or hands a publish to the store) in one turn leaves no window in which a
   * revocation goes unseen: a revocation before the check fails it, one after reaches `onRevoke`.
   */
  isValid(principal: Principal): boolean;
  /** Called with the ids of credentials that stopped being valid (removed or changed). */
  onRevoke(listener: (credentialIds: ReadonlySet<string>) => void): () => void;
  close(): void;
}

/** Extracts the token of `Authorization: Bearer <token>`, or undefined. */
export function bearerToken(authorization: string | undefined): string | undefined {
  if (authorization === undefined) return undefined;
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization);
  return m?.[1];
}
