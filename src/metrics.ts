import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

/**
 * The server's Prometheus metrics (`GET /metrics`). Hot-path figures (writes, coalesced
 * events) are plain numbers added up here and read at scrape time; latency is sampled.
 */
export class Metrics {
  readonly registry = new Registry();
  /** Events accepted by Publish. */
  published = 0;
  /** Events written to streams. */
  deliveries = 0;
  /** Events merged away in slow streams' backlogs. */
  coalesced = 0;
  /** Keep-alives written to idle streams. */
  keepAlives = 0;
  private readonly open: Gauge<"protocol" | "scope">;
  private readonly ended: Counter<"protocol" | "reason">;
  private readonly latency: Histogram;

  /**
   * `subscribers` reads the bus's subscription count at scrape time; `gauges`, other counts of
   * open things read the same way.
   */
  constructor(
    subscribers: () => number,
    gauges: { healthWatches?: () => number; feedReplays?: () => number } = {},
  ) {
    const registry = this.registry;
    collectDefaultMetrics({ register: registry });
    this.open = new Gauge({
      name: "eventserver_streams_open",
      help: "Open WatchEvents streams",
      labelNames: ["protocol", "scope"],
      registers: [registry],
    });
    this.ended = new Counter({
      name: "eventserver_streams_ended_total",
      help: "WatchEvents streams ended, by reason (a Connect code, or ok)",
      labelNames: ["protocol", "reason"],
      registers: [registry],
    });
    this.latency = new Histogram({
      name: "eventserver_publish_to_write_seconds",
      help: "Time from a publish being accepted to its event being written to a stream (sampled)",
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    });
    const self = this;
    new Counter({
      name: "eventserver_events_published_total",
      help: "Events accepted by Publish",
      registers: [registry],
      collect() {
        this.reset();
        this.inc(self.published);
      },
    });
    new Counter({
      name: "eventserver_deliveries_total",
      help: "Events written to WatchEvents streams",
      registers: [registry],
      collect() {
        this.reset();
        this.inc(self.deliveries);
      },
    });
    new Counter({
      name: "eventserver_events_coalesced_total",
      help: "Events merged into pending events of the same resource in slow streams",
      registers: [registry],
      collect() {
        this.reset();
        this.inc(self.coalesced);
      },
    });
    new Counter({
      name: "eventserver_keepalives_total",
      help: "Keep-alives written to idle streams (JSONL: 64 spaces)",
      registers: [registry],
      collect() {
        this.reset();
        this.inc(self.keepAlives);
      },
    });
    new Gauge({
      name: "eventserver_bus_subscribers",
      help: "Subscriptions held by the event bus",
      registers: [registry],
      collect() {
        this.set(subscribers());
      },
    });
    new Gauge({
      name: "eventserver_health_watches",
      help: "Open grpc.health.v1.Health/Watch streams (no credential needed; bounded)",
      registers: [registry],
      collect() {
        this.set(gauges.healthWatches?.() ?? 0);
      },
    });
    new Gauge({
      name: "eventserver_feed_replays",
      help: "Feed streams replaying from a cursor, not yet caught up (bounded)",
      registers: [registry],
      collect() {
        this.set(gauges.feedReplays?.() ?? 0);
      },
    });
  }

  streamOpened(protocol: string, scope: string): void {
    this.open.inc({ protocol, scope });
  }

  streamEnded(protocol: string, scope: string, reason: string): void {
    this.open.dec({ protocol, scope });
    this.ended.inc({ protocol, reason });
  }

  observeLatencyMs(ms: number): void {
    this.latency.observe(ms / 1000);
  }
}
