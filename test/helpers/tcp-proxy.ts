import { createServer, type Server, type Socket, connect as tcpConnect } from "node:net";

/** Where a proxy forwards to. */
export interface ProxyTarget {
  readonly host: string;
  readonly port: number;
}

/** The host and port of a `postgres://` URL (5432 when it names none). */
export function targetOf(url: string): ProxyTarget {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port || 5432) };
}

/** One connection through the proxy: the client's socket and its own to the target. */
export interface ProxiedConnection {
  readonly client: Socket;
  readonly upstream: Socket;
}

/**
 * A TCP proxy on 127.0.0.1 in front of a server (PostgreSQL, in these tests), for faults of the
 * network between a client and it: each connection it accepts gets its own to the target, and
 * when either ends, so does the other. It passes bytes on as they come; a subclass that changes
 * that (holds them, breaks a connection at a given message) overrides `relay`.
 */
export class TcpProxy {
  /** The port it listens on: chosen by the first `start`, and kept by a later one. */
  port = 0;
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();

  constructor(private readonly target: ProxyTarget) {}

  /** Listens (again, after `cut`) on `port`. */
  async start(): Promise<void> {
    const server = createServer((client) => this.accept(client));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.port, "127.0.0.1", () => resolve());
    });
    const address = server.address();
    if (address === null || typeof address === "string") throw new Error("no port");
    this.port = address.port;
    this.server = server;
  }

  /** `url` with this proxy's address in place of its host and port. */
  urlOf(url: string): string {
    const u = new URL(url);
    u.hostname = "127.0.0.1";
    u.port = String(this.port);
    return u.toString();
  }

  /** Refuses new connections; open ones stay. */
  refuse(): void {
    this.server?.close();
  }

  /** Resets every open connection and refuses new ones, until `start`. */
  async cut(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    this.drop("reset");
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  }

  /** Closes everything, open connections too. */
  close(): void {
    this.server?.close();
    this.drop("close");
  }

  /** Ends every open connection, with a reset or a plain close. */
  protected drop(how: "reset" | "close"): void {
    for (const s of this.sockets) {
      if (how === "reset") s.resetAndDestroy();
      else s.destroy();
    }
  }

  /** Connects a client that the proxy accepted to the target. */
  protected accept(client: Socket): void {
    const upstream = tcpConnect(this.target.port, this.target.host);
    const connection = { client, upstream };
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.on("close", () => this.sockets.delete(s));
      s.on("error", () => {});
    }
    client.on("data", (chunk: Buffer) => this.relay(chunk, upstream, connection));
    upstream.on("data", (chunk: Buffer) => this.relay(chunk, client, connection));
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  }

  /** Passes `chunk` on to `to`, one side of `connection` (`upstream`: from the client). */
  protected relay(chunk: Buffer, to: Socket, _connection: ProxiedConnection): void {
    if (!to.destroyed) to.write(chunk);
  }
}
