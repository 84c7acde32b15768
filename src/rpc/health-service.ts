import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { ServiceError } from "../errors.js";
import {
  Health,
  type HealthCheckRequestSchema,
  HealthCheckResponseSchema,
} from "../gen/grpc/health/v1/health_pb.js";
import type { HealthItem, HealthMonitor } from "../health/health-monitor.js";
import type { ErrorFunnel } from "./error-funnel.js";
import type { StreamMethod } from "./stream-method.js";

/** grpc.health.v1.Health/Check on the Connect runtime: no credential needed. */
export function createHealthCheck(
  monitor: HealthMonitor,
  funnel: ErrorFunnel,
): Pick<ServiceImpl<typeof Health>, "check"> {
  return {
    async check(req) {
      try {
        const status = await monitor.check(req.service);
        if (status === undefined) {
          throw new ServiceError("not_found", `unknown service "${req.service}"`);
        }
        return { status };
      } catch (err) {
        throw funnel(err, "Health.Check");
      }
    },
  };
}

/** grpc.health.v1.Health/Watch on the streaming edge: no credential needed. */
export function healthWatchMethod(
  monitor: HealthMonitor,
): StreamMethod<typeof HealthCheckRequestSchema, typeof HealthCheckResponseSchema, HealthItem> {
  return {
    method: Health.method.watch,
    public: true,
    open: ({ request }) => monitor.watch(request.service),
    toResponse: (item) => create(HealthCheckResponseSchema, { status: item.status }),
  };
}
