import { hash, timingSafeEqual } from "node:crypto";
import type { Principal, Role } from "../watch/model.js";
import { isUuid } from "../watch/uuid.js";

/** One entry of AUTH_TOKENS_FILE, as written by operators. */
export interface TokenEntry {
  /** Hex SHA-256 of the token (preferred), or... */
  readonly sha256?: string;
  /** ...the token itself in plain text. */
  readonly token?: string;
  readonly subject: string;
  readonly organization?: string;
  readonly role: Role;
}

const ROLES: readonly Role[] = ["admin", "member", "publisher", "auditor"];

/** Hex SHA-256 of a token (one-shot: no Hash object per call, which every request would make). */
export function sha256Hex(token: string): string {
  return hash("sha256", token, "hex");
}

/** Hashes of the known tokens and their principals. Immutable once built. */
export class TokenTable {
  private constructor(private readonly byHash: ReadonlyMap<string, Principal>) {}

  /**
   * Parses the token file's JSON. Returns the table, or every problem found (never a partial
   * table: a file with one bad entry is refused whole).
   */
  static parse(json: string): TokenTable | string[] {
    let doc: unknown;
    try {
      doc = JSON.parse(json);
    } catch (err) {
      return [`not valid JSON: ${(err as Error).message}`];
    }
    const tokens = (doc as { tokens?: unknown } | null)?.tokens;
    if (!Array.isArray(tokens)) return ['expected {"tokens": [...]}'];
    const problems: string[] = [];
    const entries: TokenEntry[] = [];
    tokens.forEach((raw: unknown, i: number) => {
      const at = `tokens[${i}]`;
      if (typeof raw !== "object" || raw === null) {
        problems.push(`${at}: expected an object`);
        return;
      }
      const e = raw as Record<string, unknown>;
      const hasHash = typeof e.sha256 === "string";
      const hasToken = typeof e.token === "string";
      if (hasHash === hasToken) problems.push(`${at}: give exactly one of "sha256" and "token"`);
      if (hasHash && !/^[0-9a-fA-F]{64}$/.test(e.sha256 as string)) {
        problems.push(`${at}.sha256: expected 64 hex digits`);
      }
      if (hasToken && (e.token as string).length < 8) {
        problems.push(`${at}.token: at least 8 characters`);
      }
      if (typeof e.subject !== "string" || !isUuid(e.subject)) {
        problems.push(`${at}.subject: expected a UUID`);
      }
      if (!ROLES.includes(e.role as Role)) {
        problems.push(`${at}.role: expected one of ${ROLES.join(", ")}`);
      }
      if (
        e.organization !== undefined &&
        (typeof e.organization !== "string" || !isUuid(e.organization))
      ) {
        problems.push(`${at}.organization: expected a UUID`);
      } else if (e.organization === undefined && e.role !== "publisher") {
        problems.push(`${at}.organization: required for role ${String(e.role)}`);
      }
      entries.push(e as unknown as TokenEntry);
    });
    if (problems.length > 0) return problems;
    return TokenTable.of(entries);
  }

  static of(entries: readonly TokenEntry[]): TokenTable {
    const byHash = new Map<string, Principal>();
    for (const e of entries) {
      const hash = (e.sha256 ?? sha256Hex(e.token ?? "")).toLowerCase();
      byHash.set(hash, {
        subject: e.subject.toLowerCase(),
        organization: e.organization?.toLowerCase(),
        role: e.role,
        expiresAtMs: undefined,
        credentialId: `token:${hash}`,
      });
    }
    return new TokenTable(byHash);
  }

  get size(): number {
    return this.byHash.size;
  }

  /**
   * The principal of a presented token. The token is hashed first, so the lookup's timing says
   * nothing about any stored token; the final comparison is constant-time anyway.
   */
  lookup(token: string): Principal | undefined {
    const hash = sha256Hex(token);
    const principal = this.byHash.get(hash);
    if (principal === undefined) return undefined;
    const stored = Buffer.from(principal.credentialId.slice("token:".length), "hex");
    return timingSafeEqual(stored, Buffer.from(hash, "hex")) ? principal : undefined;
  }

  /** Whether this table still gives `principal` (its token, with the same subject, organization and role). */
  holds(principal: Principal): boolean {
    const q = this.byHash.get(principal.credentialId.slice("token:".length));
    return (
      q !== undefined &&
      q.credentialId === principal.credentialId &&
      q.subject === principal.subject &&
      q.organization === principal.organization &&
      q.role === principal.role
    );
  }

  /** Credentials of this table that `next` no longer has, or has with another principal. */
  revokedIn(next: TokenTable): Set<string> {
    const out = new Set<string>();
    for (const [hash, p] of this.byHash) {
      const q = next.byHash.get(hash);
      if (
        q === undefined ||
        q.subject !== p.subject ||
        q.organization !== p.organization ||
        q.role !== p.role
      ) {
        out.add(p.credentialId);
      }
    }
    return out;
  }
}
