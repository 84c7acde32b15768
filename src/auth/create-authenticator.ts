import { readFileSync, unwatchFile, watchFile } from "node:fs";
import { readFile } from "node:fs/promises";
import { createRemoteJWKSet, type JWTVerifyGetKey, errors as joseErrors, jwtVerify } from "jose";
import type { Logger } from "pino";
import type { Config } from "../config.js";
import { ServiceError } from "../errors.js";
import type { Principal, Role } from "../watch/model.js";
import { isUuid } from "../watch/uuid.js";
import { type Authenticator, bearerToken } from "./authenticator.js";
import { DEV_TOKENS } from "./dev-tokens.js";
import { sha256Hex, TokenTable } from "./token-table.js";

/** How often the token file is checked for changes; revocations take effect within this. */
export const TOKEN_FILE_POLL_MS = 1000;

const ROLES = new Set<Role>(["admin", "member", "publisher", "auditor"]);

function unauthenticated(message: string): ServiceError {
  return new ServiceError("unauthenticated", message);
}

/** Reads and parses the token file, or throws with every problem in it. */
function readTokenFile(path: string): TokenTable {
  const parsed = TokenTable.parse(readFileSync(path, "utf8"));
  if (Array.isArray(parsed)) {
    throw new Error(`AUTH_TOKENS_FILE ${path}:\n  - ${parsed.join("\n  - ")}`);
  }
  return parsed;
}

/**
 * Builds the authenticator for the configured sources: the token file (watched and reloaded;
 * an unreadable or invalid new version is logged and the previous one kept), JWTs (HS256 with
 * a secret, or RS256/ES256 from a JWKS URL), or, in dev mode, the fixed dev tokens.
 * Throws at start when the token file is missing or invalid.
 */
export function createAuthenticator(config: Config, logger: Logger): Authenticator {
  const listeners = new Set<(ids: ReadonlySet<string>) => void>();
  let table: TokenTable | undefined;
  let stopWatching: (() => void) | undefined;

  if (config.devMode) {
    table = TokenTable.of(DEV_TOKENS);
  } else if (config.authTokensFile !== undefined) {
    const path = config.authTokensFile;
    table = readTokenFile(path);
    let missingSince: NodeJS.Timeout | undefined;
    const reload = async () => {
      let next: TokenTable | string[];
      try {
        next = TokenTable.parse(await readFile(path, "utf8"));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") {
          // Deleted: every token goes, as if the file were empty. Not at the first sight, though:
          // a tool that deletes and writes anew (rather than renames over) leaves a short gap.
          if (missingSince === undefined) {
            missingSince = setTimeout(() => void reload(), TOKEN_FILE_POLL_MS);
            missingSince.unref();
            return;
          }
          missingSince = undefined;
          next = TokenTable.of([]);
          logger.error({ path }, "token file deleted; every token of it is revoked");
        } else {
          logger.error({ err, path }, "token file unreadable; keeping the previous tokens");
          return;
        }
      }
      if (!Array.isArray(next) && missingSince !== undefined) {
        clearTimeout(missingSince);
        missingSince = undefined;
      }
      if (Array.isArray(next)) {
        logger.error({ path, problems: next }, "token file invalid; keeping the previous tokens");
        return;
      }
      const revoked = (table as TokenTable).revokedIn(next);
      table = next;
      logger.info({ path, tokens: next.size, revoked: revoked.size }, "token file reloaded");
      if (revoked.size > 0) for (const l of listeners) l(revoked);
    };
    // Stat polling survives editors' atomic renames and bind mounts, where fs.watch does not.
    const onChange = () => void reload();
    watchFile(path, { interval: TOKEN_FILE_POLL_MS, persistent: false }, onChange);
    stopWatching = () => {
      unwatchFile(path, onChange);
      clearTimeout(missingSince);
    };
  }

  let jwtKey: Uint8Array | JWTVerifyGetKey | undefined;
  let algorithms: string[] = [];
  if (config.authJwtSecret !== undefined) {
    jwtKey = new TextEncoder().encode(config.authJwtSecret);
    algorithms = ["HS256"];
  } else if (config.authJwksUrl !== undefined) {
    jwtKey = createRemoteJWKSet(new URL(config.authJwksUrl));
    algorithms = ["RS256", "ES256"];
  }

  async function verifyJwt(token: string): Promise<Principal> {
    let payload: Record<string, unknown>;
    try {
      const options = {
        algorithms,
        ...(config.authJwtIssuer !== undefined && { issuer: config.authJwtIssuer }),
        ...(config.authJwtAudience !== undefined && { audience: config.authJwtAudience }),
        // A token without exp would never expire (AUTH_JWT_REQUIRE_EXP=off allows it).
        ...(config.authJwtRequireExp && { requiredClaims: ["exp"] }),
      };
      ({ payload } =
        typeof jwtKey === "function"
          ? await jwtVerify(token, jwtKey, options)
          : await jwtVerify(token, jwtKey as Uint8Array, options));
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) throw unauthenticated("token expired");
      if (err instanceof joseErrors.JWTClaimValidationFailed && err.claim === "exp") {
        throw unauthenticated("token: exp is required (tokens must expire)");
      }
      throw unauthenticated("invalid token");
    }
    const { sub, org, role, exp } = payload;
    if (typeof sub !== "string" || !isUuid(sub)) throw unauthenticated("token: sub must be a UUID");
    if (typeof role !== "string" || !ROLES.has(role as Role)) {
      throw unauthenticated("token: role must be admin, member, publisher or auditor");
    }
    if (org !== undefined && (typeof org !== "string" || !isUuid(org))) {
      throw unauthenticated("token: org must be a UUID");
    }
    if (org === undefined && role !== "publisher") {
      throw unauthenticated("token: org is required for this role");
    }
    return {
      subject: sub.toLowerCase(),
      organization: typeof org === "string" ? org.toLowerCase() : undefined,
      role: role as Role,
      expiresAtMs: typeof exp === "number" ? exp * 1000 : undefined,
      credentialId: `jwt:${sha256Hex(token)}`,
    };
  }

  return {
    async authenticate(authorization) {
      const token = bearerToken(authorization);
      if (token === undefined) {
        throw unauthenticated(
          authorization === undefined
            ? "missing Authorization header (expected: Bearer <token>)"
            : "malformed Authorization header (expected: Bearer <token>)",
        );
      }
      const fromTable = table?.lookup(token);
      if (fromTable !== undefined) return fromTable;
      // A JWT has three base64url parts; anything else is an unknown opaque token.
      if (jwtKey !== undefined && token.split(".").length === 3) return verifyJwt(token);
      throw unauthenticated("unknown token");
    },
    isValid(principal) {
      if (principal.credentialId.startsWith("token:")) return table?.holds(principal) ?? false;
      return principal.expiresAtMs === undefined || principal.expiresAtMs > Date.now();
    },
    onRevoke(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close() {
      stopWatching?.();
      listeners.clear();
    },
  };
}
