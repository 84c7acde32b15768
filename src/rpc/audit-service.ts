import type { MessageInitShape } from "@bufbuild/protobuf";
import { type Timestamp, timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { accepted, ServiceError } from "../errors.js";
import type {
  EventService,
  GetAuditLogRequest,
  GetAuditLogResponseSchema,
  ListAuditLogsRequest,
  ListAuditLogsResponse_AuditLogEntrySchema,
  ListAuditLogsResponseSchema,
} from "../gen/gitpod/v1/event_pb.js";
import type { PaginationRequest } from "../gen/gitpod/v1/pagination_pb.js";
import type { AuditEntry, AuditFilter, Store } from "../store/store.js";
import {
  type AuditQueryInput,
  auditQueryKey,
  mayReadAudit,
  validateAuditEntryId,
  validateAuditQuery,
} from "../watch/audit-rules.js";
import { MAX_TIMESTAMP_MS } from "../watch/validate.js";
import { principalOf } from "./authenticate.js";
import type { ErrorFunnel } from "./error-funnel.js";
import { decodePageToken, encodePageToken } from "./page-token.js";

export interface AuditServiceDeps {
  /** Only the audit log and the page-token secret of the store are used. */
  readonly store: Pick<Store, "listAudit" | "getAudit" | "secret">;
  readonly funnel: ErrorFunnel;
}

/**
 * ListAuditLogs and GetAuditLog of gitpod.v1.EventService (CONTRACT §9): a part of the service,
 * to be merged with WatchEvents when the service is registered.
 */
export function createAuditService(
  deps: AuditServiceDeps,
): Pick<ServiceImpl<typeof EventService>, "listAuditLogs" | "getAuditLog"> {
  const { store, funnel } = deps;
  // Made once per database and never changed; kept after the first success only, so that a
  // store that was briefly unreachable is asked again.
  let secret: Uint8Array | undefined;
  const secretOf = async (): Promise<Uint8Array> => {
    secret ??= await store.secret();
    return secret;
  };

  return {
    async listAuditLogs(req, ctx) {
      try {
        return await listAuditLogs(req, ctx);
      } catch (err) {
        throw funnel(err, "ListAuditLogs");
      }
    },
    async getAuditLog(req, ctx) {
      try {
        return await getAuditLog(req, ctx);
      } catch (err) {
        throw funnel(err, "GetAuditLog");
      }
    },
  };

  async function listAuditLogs(
    req: ListAuditLogsRequest,
    ctx: HandlerContext,
  ): Promise<MessageInitShape<typeof ListAuditLogsResponseSchema>> {
    const reader = accepted(mayReadAudit(principalOf(ctx)));
    const paging = pagingOf(req.pagination, ctx.url);
    const query = accepted(validateAuditQuery(fromListAuditLogsRequest(req, paging.pageSize)));

    const digest = auditQueryKey(reader.organizationId, query);
    let after: { createdAtMs: number; id: string } | undefined;
    if (paging.token !== "") {
      const cursor = decodePageToken(await secretOf(), paging.token, digest);
      // The digest covers the order already; this only guards against a broken encoder.
      if (cursor.descending !== query.descending) {
        throw new ServiceError("invalid_argument", "pagination.token: invalid page token");
      }
      after = { createdAtMs: cursor.createdAtMs, id: cursor.id };
    }
    const filter: AuditFilter = {
      organizationId: reader.organizationId,
      actorIds: query.actorIds,
      actorPrincipals: query.actorPrincipals,
      subjectIds: query.subjectIds,
      subjectTypes: query.subjectTypes,
      ...(query.fromMs !== undefined && { fromMs: query.fromMs }),
      ...(query.toMs !== undefined && { toMs: query.toMs }),
    };
    // One more than a page tells whether there is a next one without a count.
    const rows = await store.listAudit({
      filter,
      descending: query.descending,
      limit: query.pageSize + 1,
      ...(after !== undefined && { after }),
    });
    const page = rows.slice(0, query.pageSize);
    const last = page.at(-1);
    const nextToken =
      rows.length > query.pageSize && last !== undefined
        ? encodePageToken(
            await secretOf(),
            { createdAtMs: last.createdAtMs, id: last.id, descending: query.descending },
            digest,
          )
        : "";
    return { entries: page.map(toAuditLogEntry), pagination: { nextToken } };
  }

  async function getAuditLog(
    req: GetAuditLogRequest,
    ctx: HandlerContext,
  ): Promise<MessageInitShape<typeof GetAuditLogResponseSchema>> {
    const reader = accepted(mayReadAudit(principalOf(ctx)));
    const id = accepted(validateAuditEntryId(req.auditLogEntryId));
    const entry = await store.getAudit(reader.organizationId, id);
    // Another organization's entry and an unknown one get the same answer.
    if (entry === undefined || entry.organizationId !== reader.organizationId) {
      throw new ServiceError("not_found", `audit_log_entry_id: audit log entry ${id} not found`);
    }
    // `details` stays unset: no kind this server records has any.
    return { entry: toAuditLogEntry(entry) };
  }
}

/** The page asked for: page size as a number (NaN when the URL holds no integer) and token. */
export interface Paging {
  readonly pageSize: number;
  readonly token: string;
}

/**
 * `pagination` of the body, overridden by the query parameters `token` and `pageSize` of the
 * request URL where present (non-empty). The official SDKs page that way: they re-send the first
 * body unchanged with `?token=…&pageSize=…`, so without the override auto-paging would repeat
 * page 1 forever. `page_size` is accepted as a spelling of `pageSize`. Connect GET requests
 * carry their message in `message=`, which the runtime reads; it does not clash with these.
 */
export function pagingOf(body: PaginationRequest | undefined, url: string): Paging {
  let params: URLSearchParams;
  try {
    params = new URL(url, "http://localhost").searchParams;
  } catch {
    params = new URLSearchParams();
  }
  const token = params.get("token");
  const size = params.get("pageSize") || params.get("page_size");
  return {
    pageSize: size ? parseInteger(size) : (body?.pageSize ?? 0),
    token: token || (body?.token ?? ""),
  };
}

function parseInteger(text: string): number {
  return /^[+-]?\d{1,10}$/.test(text) ? Number(text) : Number.NaN;
}

/** proto -> domain, without judging: validation is the rules' job. */
export function fromListAuditLogsRequest(
  req: ListAuditLogsRequest,
  pageSize: number,
): AuditQueryInput {
  const f = req.filter;
  return {
    actorIds: f?.actorIds ?? [],
    actorPrincipals: f?.actorPrincipals ?? [],
    subjectIds: f?.subjectIds ?? [],
    subjectTypes: f?.subjectTypes ?? [],
    fromMs: f?.from && boundMs(f.from),
    toMs: f?.to && boundMs(f.to),
    sortField: req.sort?.field ?? "",
    sortOrder: req.sort?.order ?? 0,
    pageSize,
  };
}

/**
 * A time bound in whole ms. Entries are kept to the ms, so a bound within a ms is rounded up:
 * `createdAtMs >= from` and `createdAtMs < to` then select exactly the entries the precise
 * bounds would. NaN for nanos out of range (the rules refuse it).
 */
function boundMs(ts: Timestamp): number {
  if (!Number.isInteger(ts.nanos) || ts.nanos < 0 || ts.nanos > 999_999_999) return Number.NaN;
  return Number(ts.seconds) * 1000 + Math.ceil(ts.nanos / 1_000_000);
}

/** 0001-01-01T00:00:00Z, the earliest time Timestamp's JSON form can spell. */
const MIN_TIMESTAMP_MS = -62_135_596_800_000;

function toAuditLogEntry(
  e: AuditEntry,
): MessageInitShape<typeof ListAuditLogsResponse_AuditLogEntrySchema> {
  return {
    id: e.id,
    actorId: e.actorId,
    actorPrincipal: e.actorPrincipal,
    subjectId: e.subjectId,
    subjectType: e.subjectType,
    action: e.action,
    // Rows written before occurred_at was bounded may hold any time: show them within what
    // Timestamp's JSON form can spell rather than fail every JSON client (and the SDKs).
    createdAt: timestampFromMs(
      Math.min(MAX_TIMESTAMP_MS, Math.max(MIN_TIMESTAMP_MS, e.createdAtMs)),
    ),
    kind: e.kind,
  };
}
