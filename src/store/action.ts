import {
  type ResourceOperation,
  ResourceOperationSchema,
  type ResourceType,
  ResourceTypeSchema,
} from "../gen/gitpod/v1/event_pb.js";
import type { ResourceEvent } from "../watch/model.js";

function suffix(name: string | undefined, prefix: string): string {
  return (name ?? "unknown").replace(prefix, "").toLowerCase();
}

/**
 * The audit action of an event: its own, or derived from type and operation as
 * `<type>.<operation>` in lower case (`environment.create`, `task_execution.update_status`).
 */
export function actionOf(event: ResourceEvent): string {
  if (event.action) return event.action;
  const type = ResourceTypeSchema.value[event.resourceType as ResourceType]?.name;
  const op = ResourceOperationSchema.value[event.operation as ResourceOperation]?.name;
  return `${suffix(type, "RESOURCE_TYPE_")}.${suffix(op, "RESOURCE_OPERATION_")}`;
}
