import {
  type EnvironmentRecord,
  Operation,
  type ResourceEvent,
  ResourceType,
} from "../watch/model.js";

interface Known {
  readonly organizationId: string;
  readonly resourceType: number;
  creatorId: string;
}

/**
 * What the server has learned from the events it was given: each resource's creator and
 * organization, and each environment, so that a later event without `creator_id` (a DELETE,
 * say) is still shown to its creator and environment scope can be authorized.
 *
 * Bounded: at most `maxEntries` resources, least recently touched forgotten first (a forgotten
 * creator means admins only: fail closed). A deleted resource is forgotten once its DELETE is
 * dispatched.
 */
export class ResourceDirectory {
  private readonly known = new Map<string, Known>();

  constructor(private readonly maxEntries: number) {}

  get size(): number {
    return this.known.size;
  }

  /** The event's creator, or the one recorded for the same resource of the same organization. */
  creatorOf(event: ResourceEvent): string {
    if (event.creatorId !== "") return event.creatorId;
    const k = this.known.get(event.resourceId);
    return k !== undefined && k.organizationId === event.organizationId ? k.creatorId : "";
  }

  environment(environmentId: string): EnvironmentRecord | undefined {
    const k = this.known.get(environmentId);
    if (k === undefined || k.resourceType !== ResourceType.ENVIRONMENT) return undefined;
    return { organizationId: k.organizationId, creatorId: k.creatorId };
  }

  /** Learns from an accepted event; call after it was dispatched. */
  learn(event: ResourceEvent, creatorId: string): void {
    const id = event.resourceId;
    const existing = this.known.get(id);
    // An id already known in another organization keeps its record: one tenant's events never
    // change what is known of another's resources (the colliding resource stays unknown).
    if (existing !== undefined && existing.organizationId !== event.organizationId) return;
    if (event.operation === Operation.DELETE) {
      this.known.delete(id);
      return;
    }
    if (existing !== undefined) {
      if (creatorId !== "") existing.creatorId = creatorId;
      // Re-insert to mark it recently used (Map keeps insertion order).
      this.known.delete(id);
      this.known.set(id, existing);
      return;
    }
    // Nothing worth keeping: no creator, and not an environment (whose organization matters).
    if (creatorId === "" && event.resourceType !== ResourceType.ENVIRONMENT) return;
    this.known.set(id, {
      organizationId: event.organizationId,
      resourceType: event.resourceType,
      creatorId,
    });
    if (this.known.size > this.maxEntries) {
      const oldest = this.known.keys().next().value;
      if (oldest !== undefined) this.known.delete(oldest);
    }
  }
}
