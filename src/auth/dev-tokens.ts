import type { TokenEntry } from "./token-table.js";

/**
 * Dev mode's demo organization and its fixed tokens (documented in the README). Only used when
 * no token source is configured and NODE_ENV is not production; the server then binds
 * 127.0.0.1 unless HOST says otherwise.
 */
export const DEV_ORGANIZATION = "0d000000-0000-4000-8000-000000000001";

export const DEV_TOKENS: readonly (TokenEntry & { token: string })[] = [
  {
    token: "dev-admin-token",
    subject: "0d000000-0000-4000-8000-00000000a001",
    organization: DEV_ORGANIZATION,
    role: "admin",
  },
  {
    token: "dev-member-token",
    subject: "0d000000-0000-4000-8000-00000000a002",
    organization: DEV_ORGANIZATION,
    role: "member",
  },
  {
    token: "dev-publisher-token",
    subject: "0d000000-0000-4000-8000-00000000a003",
    organization: DEV_ORGANIZATION,
    role: "publisher",
  },
];
