// The live console (GET /console/): watches with connect-web, in the Connect protocol or gRPC-Web,
// and shows the events, counts per type, and the server's open streams and deliveries per second
// from /metrics. Bundled by scripts/build-console.ts.
import type { MessageInitShape } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import {
  EventService,
  ResourceOperation,
  ResourceType,
  type WatchEventsRequestSchema,
} from "../src/gen/gitpod/v1/event_pb.js";

const MAX_ROWS = 500;
const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

const form = $<HTMLFormElement>("watch");
const button = $<HTMLButtonElement>("start");
const status = $<HTMLDivElement>("status");
const rows = $<HTMLTableSectionElement>("events");
const counts = new Map<string, number>();
let abort: AbortController | undefined;

function setStatus(text: string, kind: "" | "live" | "error" = ""): void {
  status.textContent = text;
  status.className = kind;
}

type Request = MessageInitShape<typeof WatchEventsRequestSchema>;

function typeFilters(text: string): NonNullable<Request["resourceTypeFilters"]> {
  return text
    .split(/[\s,]+/)
    .filter((t) => t !== "")
    .map((t) => {
      const name = t.toUpperCase().replace(/^RESOURCE_TYPE_/, "");
      const value = ResourceType[name as keyof typeof ResourceType];
      if (value === undefined) throw new Error(`unknown resource type ${t}`);
      return { resourceType: value };
    });
}

function show(operation: number, resourceType: number, resourceId: string): void {
  const op = ResourceOperation[operation] ?? String(operation);
  const type = ResourceType[resourceType] ?? String(resourceType);
  const tr = document.createElement("tr");
  for (const [text, cls] of [
    [new Date().toLocaleTimeString(), ""],
    [op, `op-${op}`],
    [type, ""],
    [resourceId, "id"],
  ]) {
    const td = document.createElement("td");
    td.textContent = text as string;
    if (cls) td.className = cls;
    tr.append(td);
  }
  rows.prepend(tr);
  while (rows.rows.length > MAX_ROWS) rows.deleteRow(-1);
  counts.set(type, (counts.get(type) ?? 0) + 1);
  const list = $<HTMLDListElement>("counts");
  list.replaceChildren(
    ...[...counts.entries()]
      .sort((a, b) => b[1] - a[1])
      .flatMap(([name, n]) => {
        const dt = document.createElement("dt");
        dt.textContent = name;
        const dd = document.createElement("dd");
        dd.textContent = String(n);
        return [dt, dd];
      }),
  );
}

async function watch(signal: AbortSignal): Promise<void> {
  const token = $<HTMLInputElement>("token").value.trim();
  const protocol = $<HTMLSelectElement>("protocol").value;
  const environment = $<HTMLInputElement>("environment").value.trim();
  const scoped = $<HTMLSelectElement>("scope").value === "environment";
  const baseUrl = location.origin;
  const transport =
    protocol === "grpcweb"
      ? createGrpcWebTransport({ baseUrl })
      : createConnectTransport({ baseUrl });
  const client = createClient(EventService, transport);
  const request: Request = scoped
    ? { scope: { case: "environmentId" as const, value: environment } }
    : {
        scope: { case: "organization" as const, value: true },
        resourceTypeFilters: typeFilters($<HTMLInputElement>("types").value),
      };
  const stream = client.watchEvents(request, {
    headers: { authorization: `Bearer ${token}` },
    signal,
  });
  setStatus(`Watching (${protocol === "grpcweb" ? "gRPC-Web" : "Connect"})…`, "live");
  for await (const e of stream) show(e.operation, e.resourceType, e.resourceId);
  setStatus("The stream ended (the environment was deleted).");
}

// Dev mode's fixed tokens (documented in the README), one click away.
$<HTMLSelectElement>("dev-token").addEventListener("change", (ev) => {
  const value = (ev.target as HTMLSelectElement).value;
  if (value !== "") $<HTMLInputElement>("token").value = value;
});

form.addEventListener("submit", (ev) => {
  ev.preventDefault();
  if (abort !== undefined) {
    abort.abort();
    return;
  }
  const controller = new AbortController();
  abort = controller;
  button.textContent = "Stop";
  button.className = "stop";
  watch(controller.signal)
    .catch((err: unknown) => {
      if (!controller.signal.aborted) setStatus(`Error: ${(err as Error).message}`, "error");
      else setStatus("Stopped.");
    })
    .finally(() => {
      abort = undefined;
      button.textContent = "Watch";
      button.className = "";
    });
});

// The server's figures, from the Prometheus text of /metrics.
let last: { at: number; deliveries: number } | undefined;
async function poll(): Promise<void> {
  try {
    const text = await (await fetch("/metrics")).text();
    const sum = (name: string) =>
      text
        .split("\n")
        .filter((l) => l.startsWith(name))
        .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(" ") + 1)), 0);
    $("streams").textContent = String(sum("eventserver_streams_open"));
    const now = { at: performance.now(), deliveries: sum("eventserver_deliveries_total") };
    if (last !== undefined) {
      const rate = ((now.deliveries - last.deliveries) * 1000) / (now.at - last.at);
      $("rate").textContent = rate.toFixed(1);
    }
    last = now;
  } catch {
    // The server is away; try again at the next tick.
  }
}
void poll();
setInterval(poll, 2000);
