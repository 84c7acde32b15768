import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  WatchRequestSchema as FeedWatchRequestSchema,
  WatchResponseSchema as FeedWatchResponseSchema,
} from "../src/gen/eventservice/feed/v1/feed_pb.js";
import {
  PublishRequestSchema,
  PublishResponseSchema,
} from "../src/gen/eventservice/ingest/v1/ingest_pb.js";
import {
  ResourceOperation,
  ResourceType,
  WatchEventsRequestSchema,
} from "../src/gen/gitpod/v1/event_pb.js";
import { Principal } from "../src/gen/gitpod/v1/identity_pb.js";

/**
 * What every process of the benchmark agrees on: organizations, tokens, resource ids and the
 * pre-encoded gRPC frames. Everything is derived from small integers, so the orchestrator, the
 * load generator and the servers compute the same values without passing them around.
 */

/** Organization 0 is the target of every publish; 1..1000 hold the idle streams. */
export const ORGANIZATIONS = 1001;

export const orgId = (i: number): string =>
  `0b000000-0000-4000-8000-${i.toString(16).padStart(12, "0")}`;
export const subjectId = (i: number): string =>
  `5b000000-0000-4000-8000-${i.toString(16).padStart(12, "0")}`;
export const memberToken = (org: number): string =>
  `bench-member-${org.toString().padStart(4, "0")}-5f0c7e1a9b`;
export const PUBLISHER_TOKEN = "bench-publisher-7d41c2e8a0f3";
const PUBLISHER_SUBJECT = "5b000000-0000-4000-8000-ffffffffffff";

/** A resource id from a pool index (lower-case hex: the server sends ids in lower case). */
export const resourceId = (i: number): string =>
  `7e000000-0000-4000-8000-${i.toString(16).padStart(12, "0")}`;

/** The token file of ours (and the token -> organization map of limit and peer). */
export function tokenFileJson(): string {
  const tokens: object[] = [];
  for (let i = 0; i < ORGANIZATIONS; i++) {
    tokens.push({
      token: memberToken(i),
      subject: subjectId(i),
      organization: orgId(i),
      role: "member",
    });
  }
  tokens.push({ token: PUBLISHER_TOKEN, subject: PUBLISHER_SUBJECT, role: "publisher" });
  return JSON.stringify({ tokens });
}

/** Token -> organization, from the token file's JSON (what limit and peer use). */
export function organizationsByToken(json: string): Map<string, string> {
  const doc = JSON.parse(json) as { tokens: { token?: string; organization?: string }[] };
  const map = new Map<string, string>();
  for (const t of doc.tokens) {
    if (t.token !== undefined && t.organization !== undefined) map.set(t.token, t.organization);
  }
  return map;
}

/** One gRPC length-prefixed message (uncompressed). */
export function grpcFrame(message: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(5 + message.length);
  frame[0] = 0;
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  return frame;
}

/** Scenario 5: 50 filters of 25 resource ids each; filter f holds ids 25f..25f+24. */
export const FILTERS = 50;
export const IDS_PER_FILTER = 25;
export const FILTERED_IDS = FILTERS * IDS_PER_FILTER;

/** The WatchEventsRequest frame: organization scope, optionally with scenario 5's filters. */
export function watchRequestFrame(filters: boolean): Buffer {
  const resourceTypeFilters = [];
  if (filters) {
    for (let f = 0; f < FILTERS; f++) {
      const resourceIds = [];
      for (let k = 0; k < IDS_PER_FILTER; k++) resourceIds.push(resourceId(f * IDS_PER_FILTER + k));
      resourceTypeFilters.push({ resourceType: ResourceType.PROJECT, resourceIds });
    }
  }
  return grpcFrame(
    toBinary(WatchEventsRequestSchema, create(WatchEventsRequestSchema, { resourceTypeFilters })),
  );
}

/** The two server-streaming methods over gRPC that the bench watches with. */
export const WATCH_PATH = "/gitpod.v1.EventService/WatchEvents";
export const FEED_PATH = "/eventservice.feed.v1.FeedService/Watch";

/**
 * The first byte of a feed `WatchResponse` that holds a checkpoint: the tag of field 2,
 * length-delimited (an event, field 1, starts with 0x0a). The watch client skips these when it
 * counts feed messages (Tally.skipFirstByte), so feed streams count events only.
 */
export const FEED_CHECKPOINT_TAG = 0x12;

/** The feed's WatchRequest frame: organization scope, no filters, `after` a cursor or "" (now). */
export function feedRequestFrame(after: string): Buffer {
  return grpcFrame(toBinary(FeedWatchRequestSchema, create(FeedWatchRequestSchema, { after })));
}

/** The cursor of a feed WatchResponse's checkpoint; undefined when it holds an event. */
export function checkpointCursor(message: Uint8Array): string | undefined {
  const r = fromBinary(FeedWatchResponseSchema, message);
  return r.kind.case === "checkpoint" ? r.kind.value.cursor : undefined;
}

function event(resource: string, organization: string) {
  // PROJECT is visible to every member of the organization; UPDATE keeps no state.
  return {
    resourceType: ResourceType.PROJECT,
    operation: ResourceOperation.UPDATE,
    resourceId: resource,
    organizationId: organization,
  };
}

/**
 * PublishRequest frames that cycle through `pool` resource ids of organization `org` in batches
 * of `batch` events: encoded once, up front; the publisher sends them round-robin.
 */
export function publishFrames(org: number, pool: number, batch: number): Buffer[] {
  const frames: Buffer[] = [];
  const cycle = lcm(pool, batch) / batch;
  for (let b = 0; b < cycle; b++) {
    const events = [];
    for (let k = 0; k < batch; k++)
      events.push(event(resourceId((b * batch + k) % pool), orgId(org)));
    frames.push(
      grpcFrame(toBinary(PublishRequestSchema, create(PublishRequestSchema, { events }))),
    );
  }
  return frames;
}

/** Scenario 6: the creators and actors the production-like events cycle through. */
export const PERSIST_CREATORS = 100;
export const PERSIST_ACTORS = 500;
export const creatorId = (i: number): string =>
  `c0000000-0000-4000-8000-${i.toString(16).padStart(12, "0")}`;
export const actorId = (i: number): string =>
  `a0000000-0000-4000-8000-${i.toString(16).padStart(12, "0")}`;

/**
 * Scenario 6's PublishRequest frames: PROJECT UPDATEs of `pool` resources of organization `org`,
 * each with its creator set (resource r was created by creator r mod PERSIST_CREATORS, the same
 * every time, as a publisher that knows its resources sends it); `audited` adds an actor (user r
 * mod PERSIST_ACTORS) to every event, which makes each event an audit log entry. Encoded once.
 */
export function persistFrames(
  org: number,
  pool: number,
  batch: number,
  audited: boolean,
): Buffer[] {
  const frames: Buffer[] = [];
  const cycle = lcm(pool, batch) / batch;
  for (let b = 0; b < cycle; b++) {
    const events = [];
    for (let k = 0; k < batch; k++) {
      const r = (b * batch + k) % pool;
      events.push({
        ...event(resourceId(r), orgId(org)),
        creatorId: creatorId(r % PERSIST_CREATORS),
        ...(audited && { actorId: actorId(r % PERSIST_ACTORS), actorPrincipal: Principal.USER }),
      });
    }
    frames.push(
      grpcFrame(toBinary(PublishRequestSchema, create(PublishRequestSchema, { events }))),
    );
  }
  return frames;
}

/**
 * One event for each of the organizations `from..to-1`, to confirm that their streams deliver.
 * Organization 0's event has resource id 0, which scenario 5's filters let through.
 */
export function confirmationFrame(from: number, to: number): Buffer {
  const events = [];
  for (let o = from; o < to; o++) {
    events.push(event(resourceId(o === 0 ? 0 : 1_000_000 + o), orgId(o)));
  }
  return grpcFrame(toBinary(PublishRequestSchema, create(PublishRequestSchema, { events })));
}

/** 12 hex digits of the resource id that carry the send time in the latency scenario. */
export const TIME_HEX_DIGITS = 12;
const TIME_SENTINEL = "abcdefabcdef";

/**
 * A one-event PublishRequest frame whose resource id ends in 12 hex digits that the sender
 * overwrites with its monotonic clock (µs) before each publish; `offset` is where they are.
 */
export function latencyTemplate(org: number): { frame: Buffer; offset: number } {
  const frame = grpcFrame(
    toBinary(
      PublishRequestSchema,
      create(PublishRequestSchema, {
        events: [event(`7e000000-0000-4000-8000-${TIME_SENTINEL}`, orgId(org))],
      }),
    ),
  );
  const offset = frame.indexOf(TIME_SENTINEL, 0, "latin1");
  if (offset < 0) throw new Error("latency template: sentinel not found");
  return { frame, offset };
}

/** The empty PublishResponse frame limit answers with. */
export const EMPTY_PUBLISH_RESPONSE = grpcFrame(
  toBinary(PublishResponseSchema, create(PublishResponseSchema, {})),
);

function lcm(a: number, b: number): number {
  let x = a;
  let y = b;
  while (y !== 0) [x, y] = [y, x % y];
  return (a / x) * b;
}
