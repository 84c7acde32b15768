import type { TokenEntry } from "../../src/auth/token-table.js";

/** Two organizations and the principals the integration tests act as. */
export const ORG_A = "a0000000-0000-4000-8000-00000000000a";
export const ORG_B = "b0000000-0000-4000-8000-00000000000b";

export const USERS = {
  adminA: "a0000000-0000-4000-8000-0000000000a1",
  memberA: "a0000000-0000-4000-8000-0000000000a2",
  otherMemberA: "a0000000-0000-4000-8000-0000000000a3",
  publisherA: "a0000000-0000-4000-8000-0000000000a4",
  adminB: "b0000000-0000-4000-8000-0000000000b1",
  publisher: "c0000000-0000-4000-8000-0000000000c1",
  auditorA: "a0000000-0000-4000-8000-0000000000a5",
} as const;

export const TOKENS = {
  adminA: "test-admin-a-token",
  memberA: "test-member-a-token",
  otherMemberA: "test-other-member-a-token",
  publisherA: "test-publisher-a-token",
  adminB: "test-admin-b-token",
  publisher: "test-global-publisher-token",
  auditorA: "test-auditor-a-token",
} as const;

export const TOKEN_ENTRIES: TokenEntry[] = [
  { token: TOKENS.adminA, subject: USERS.adminA, organization: ORG_A, role: "admin" },
  { token: TOKENS.memberA, subject: USERS.memberA, organization: ORG_A, role: "member" },
  {
    token: TOKENS.otherMemberA,
    subject: USERS.otherMemberA,
    organization: ORG_A,
    role: "member",
  },
  { token: TOKENS.publisherA, subject: USERS.publisherA, organization: ORG_A, role: "publisher" },
  { token: TOKENS.adminB, subject: USERS.adminB, organization: ORG_B, role: "admin" },
  { token: TOKENS.publisher, subject: USERS.publisher, role: "publisher" },
  { token: TOKENS.auditorA, subject: USERS.auditorA, organization: ORG_A, role: "auditor" },
];

let counter = 0;
/** A fresh, recognizable UUID for each resource a test publishes. */
export function uuid(): string {
  counter++;
  const hex = counter.toString(16).padStart(12, "0");
  return `e0000000-0000-4000-8000-${hex}`;
}

/** A deterministic pseudo-random source (Lehmer): `next(n)` is in [0, n); a seed replays a run. */
export function random(seed: number): (n: number) => number {
  let state = seed;
  return (n) => {
    state = (state * 48271) % 2147483647;
    return state % n;
  };
}
