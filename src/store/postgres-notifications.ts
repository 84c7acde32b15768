import pg from "pg";

/** Where to log what happens in the background (a lost listener, an idle connection that failed). */
export interface PostgresStoreLogger {
  warn(obj: object, msg: string): void;
}

/**
 * The NOTIFY channel; the payload is the last sequence of the append, which lets a replica skip
 * reading the log for appends it has dispatched already (its own).
 */
export const EVENTS_CHANNEL = "eventserver_events";

/**
 * One dedicated connection doing LISTEN (a pooled one would lose its LISTEN when handed back).
 * Reconnects with doubling delays after the connection fails, and then calls `onAppend` once:
 * notifications sent while it was away are lost, so the reader must look for itself.
 *
 * Reconnect delays double from `backoffMinMs` to `backoffMaxMs`. Owns its connection: `stop()`
 * ends it and any pending reconnect.
 */
export class NotificationListener {
  private client: pg.Client | undefined;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private attempt = 0;

  constructor(
    private readonly config: pg.ClientConfig,
    private readonly onAppend: (lastSequence?: number) => void,
    private readonly backoffMinMs: number,
    private readonly backoffMaxMs: number,
    private readonly logger: PostgresStoreLogger | undefined,
  ) {}

  /** The first connection; throws when it cannot be made. */
  async start(): Promise<void> {
    await this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => {});
  }

  private async connect(): Promise<void> {
    const client = new pg.Client(this.config);
    let live = false;
    const onFailure = (err?: Error): void => {
      // Only a connection that was up reconnects; a failed attempt is retried by its caller.
      if (!live) return;
      live = false;
      if (this.client === client) this.client = undefined;
      client.end().catch(() => {});
      if (this.stopped) return;
      this.logger?.warn({ err }, "PostgreSQL LISTEN connection lost; reconnecting");
      this.scheduleReconnect();
    };
    // Attached before connecting: a failure must never be an unhandled 'error' event.
    client.on("error", onFailure);
    client.on("end", () => onFailure());
    client.on("notification", (msg) => {
      if (msg.channel !== EVENTS_CHANNEL) return;
      const last = Number(msg.payload);
      this.notify(Number.isSafeInteger(last) ? last : undefined);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${EVENTS_CHANNEL}`);
    } catch (err) {
      await client.end().catch(() => {});
      throw err;
    }
    if (this.stopped) {
      await client.end().catch(() => {});
      return;
    }
    live = true;
    this.client = client;
    this.attempt = 0;
  }

  private scheduleReconnect(): void {
    const delayMs = Math.min(this.backoffMaxMs, this.backoffMinMs * 2 ** this.attempt);
    this.attempt++;
    this.timer = setTimeout(() => {
      this.connect().then(
        () => {
          if (!this.stopped) this.notify();
        },
        (err: unknown) => {
          if (this.stopped) return;
          this.logger?.warn({ err }, "PostgreSQL LISTEN reconnect failed");
          this.scheduleReconnect();
        },
      );
    }, delayMs);
  }

  /** `lastSequence`: of the append notified; undefined after a reconnect (anything may be new). */
  private notify(lastSequence?: number): void {
    try {
      this.onAppend(lastSequence);
    } catch (err) {
      this.logger?.warn({ err }, "onAppend threw");
    }
  }
}
