// SSE fan-out and memory per connected client: N streams on topics=overview held by 2 client processes,
// a paced ingest that changes the overview every fast tick; delivery judged per id against the earliest receiver.

import { buildFeed, chunks, pacedIngest, quantile, type PacedRun } from "./live-feed.ts";
import { cpuDelta, memoryOf, openFileLimit, threadCpu, type ServerChild } from "./proc.ts";

const CLIENT_SCRIPT = new URL("./sse-clients.ts", import.meta.url).pathname;

export interface FanoutResult {
  clients: number;
  clientProcesses: number;
  connected: number;
  connectFailed: number;
  connectMs: number;
  serverOpenFiles: { soft: number; hard: number };
  memory: { rss0MB: number; rssIdleMB: number; kbPerClient: number; settled0: boolean; settledIdle: boolean; rssAfterTrafficMB: number };
  ingest: PacedRun;
  windowMs: number;
  /** distinct message ids first received inside the window */
  ids: number;
  idsPerSec: number;
  /** every connected client received every id of the window */
  allDelivered: boolean;
  missing: number;
  clientsMissingAny: number;
  perClient: { min: number; median: number; max: number };
  /** receive time minus the earliest receive time of the same id, over every (client, id) */
  lagMs: { p50: number; p99: number; max: number };
  /** snapshots received after the first one (resyncs of slow clients) */
  resyncs: number;
  streamsEnded: number;
  clientCpuS: number[];
  /** client CPU as a share of one core during the window, per process */
  clientCoreShare: number[];
  serverCpu: Record<string, number>;
  serverCoreShare: number;
  /** bytes all clients received over the whole session (snapshots and idle deltas included) */
  bytesReceived: number;
  firstError: string | null;
}

interface ClientRecord {
  ids: number[];
  at: number[];
  snapshots: number;
  bytes: number;
  ended: boolean;
  error: string | null;
}

interface Child {
  proc: ReturnType<typeof Bun.spawn<"pipe", "pipe", "inherit">>;
  lines: AsyncGenerator<Record<string, unknown>>;
}

async function* jsonLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<Record<string, unknown>> {
  const dec = new TextDecoder();
  let carry = "";
  for await (const chunk of chunks(stream)) {
    carry += dec.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = carry.indexOf("\n")) >= 0) {
      const line = carry.slice(0, nl);
      carry = carry.slice(nl + 1);
      if (line.trim() !== "") yield JSON.parse(line) as Record<string, unknown>;
    }
  }
}

async function nextLine(c: Child, timeoutMs: number): Promise<Record<string, unknown>> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`SSE client process silent for ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    const r = await Promise.race([c.lines.next(), t]);
    if (r.done) throw new Error("SSE client process ended early");
    return r.value;
  } finally {
    clearTimeout(timer);
  }
}

/** RSS once a second until three readings lie within 2 % (or maxMs). */
async function settledRss(pid: number, maxMs: number): Promise<{ mb: number; stable: boolean }> {
  const xs: number[] = [memoryOf(pid).rssMB];
  const t0 = performance.now();
  const stable = () => xs.length >= 3 && Math.max(...xs.slice(-3)) <= Math.min(...xs.slice(-3)) * 1.02;
  while (!stable() && performance.now() - t0 < maxMs) {
    await Bun.sleep(1000);
    xs.push(memoryOf(pid).rssMB);
  }
  return { mb: xs.at(-1)!, stable: stable() };
}

/**
 * Connects `clients` SSE streams from `processes` client processes, measures server RSS idle with 0 and
 * with all of them, then ingests `rate` ev/s and judges delivery over `windowMs`.
 */
export async function fanoutBench(
  server: ServerChild,
  o: { clients: number; processes: number; rate: number; windowMs: number; say: (m: string) => void },
): Promise<FanoutResult> {
  const say = o.say;
  const serverOpenFiles = openFileLimit(server.pid);
  const feed = buildFeed({ events: Math.ceil((o.rate * (o.windowMs + 4000)) / 1000 * 1.3), seed: 500, idPrefix: "fo-" });
  say(`fan-out: server open-file limit ${serverOpenFiles.soft}/${serverOpenFiles.hard}; settling RSS with 0 clients...`);
  const r0 = await settledRss(server.pid, 15_000);

  const children: Child[] = [];
  let firstError: string | null = null;
  try {
    const per = Math.ceil(o.clients / o.processes);
    const url = `${server.url}/api/stream?topics=overview`;
    const tc = performance.now();
    for (let p = 0; p < o.processes; p++) {
      const n = Math.min(per, o.clients - p * per);
      const proc = Bun.spawn([process.execPath, CLIENT_SCRIPT, url, String(n), "180000"], {
        stdin: "pipe",
        stdout: "pipe",
        stderr: "inherit",
        env: { ...process.env, BUN_CONFIG_MAX_HTTP_REQUESTS: String(Math.max(512, n * 2)) },
      });
      children.push({ proc, lines: jsonLines(proc.stdout) });
    }
    let connected = 0;
    let connectFailed = 0;
    for (const c of children) {
      const m = await nextLine(c, 90_000);
      connected += Number(m.ok);
      connectFailed += Number(m.failed);
      firstError ??= (m.firstError as string | null) ?? null;
    }
    const connectMs = performance.now() - tc;
    say(`fan-out: ${connected} streams open (${connectFailed} failed) in ${Math.round(connectMs)} ms; settling RSS...`);
    const r1 = await settledRss(server.pid, 20_000);
    say(`fan-out: RSS ${r0.mb.toFixed(1)} MB with 0 clients, ${r1.mb.toFixed(1)} MB with ${connected} idle`);

    const mark = async () => {
      const xs: number[] = [];
      for (const c of children) {
        c.proc.stdin.write("mark\n");
        c.proc.stdin.flush();
      }
      for (const c of children) xs.push(Number((await nextLine(c, 10_000)).cpuS));
      return xs;
    };
    say(`fan-out: ingest ${o.rate} ev/s for ${(o.windowMs + 3000) / 1000} s...`);
    const ingestStart = performance.timeOrigin + performance.now();
    const winFrom = ingestStart + 1500;
    const winTo = winFrom + o.windowMs;
    let cpuA: number[] = [];
    let cpuB: number[] = [];
    let srvA = threadCpu(server.pid);
    let srvB = srvA;
    const timing = (async () => {
      await Bun.sleep(1500);
      cpuA = await mark();
      srvA = threadCpu(server.pid);
      await Bun.sleep(o.windowMs);
      cpuB = await mark();
      srvB = threadCpu(server.pid);
    })();
    const ingest = await pacedIngest(`${server.url}/api/events`, feed, { rate: o.rate, durationMs: o.windowMs + 3000 });
    await timing;
    await Bun.sleep(1000); // frames of the last window ids still in flight
    const rssAfter = memoryOf(server.pid).rssMB;

    const records: ClientRecord[] = [];
    const clientCpuS: number[] = [];
    for (const c of children) {
      c.proc.stdin.write("stop\n");
      c.proc.stdin.flush();
    }
    for (const c of children) {
      const m = await nextLine(c, 60_000);
      records.push(...(m.clients as ClientRecord[]));
      clientCpuS.push(Math.round(Number(m.cpuS) * 100) / 100);
    }

    // ids of the window: first received (by anyone) inside it
    const earliest = new Map<number, number>();
    for (const r of records) for (let i = 0; i < r.ids.length; i++) if (!(earliest.get(r.ids[i])! <= r.at[i])) earliest.set(r.ids[i], r.at[i]);
    const windowIds = new Set<number>();
    for (const [id, at] of earliest) if (at >= winFrom && at < winTo) windowIds.add(id);
    const lags: number[] = [];
    const counts: number[] = [];
    let missing = 0;
    let clientsMissingAny = 0;
    let resyncs = 0;
    let ended = 0;
    let bytes = 0;
    const open = records.filter((r) => r.error === null || r.ids.length > 0);
    for (const r of open) {
      let got = 0;
      for (let i = 0; i < r.ids.length; i++) {
        if (!windowIds.has(r.ids[i])) continue;
        got++;
        lags.push(r.at[i] - earliest.get(r.ids[i])!);
      }
      counts.push(got);
      if (got < windowIds.size) {
        missing += windowIds.size - got;
        clientsMissingAny++;
      }
      resyncs += Math.max(0, r.snapshots - 1);
      if (r.ended) ended++;
      bytes += r.bytes;
    }
    lags.sort((a, b) => a - b);
    counts.sort((a, b) => a - b);
    const windowS = o.windowMs / 1000;
    const srvCpu = cpuDelta(srvA, srvB);
    const srvTotal = Object.values(srvCpu).reduce((a, x) => a + x, 0);
    const r1d = (x: number) => Math.round(x * 10) / 10;
    return {
      clients: o.clients,
      clientProcesses: o.processes,
      connected,
      connectFailed,
      connectMs: Math.round(connectMs),
      serverOpenFiles,
      memory: {
        rss0MB: r1d(r0.mb),
        rssIdleMB: r1d(r1.mb),
        kbPerClient: connected > 0 ? Math.round(((r1.mb - r0.mb) * 1000) / connected * 10) / 10 : NaN,
        settled0: r0.stable,
        settledIdle: r1.stable,
        rssAfterTrafficMB: r1d(rssAfter),
      },
      ingest,
      windowMs: o.windowMs,
      ids: windowIds.size,
      idsPerSec: windowIds.size / windowS,
      allDelivered: connected === o.clients && missing === 0 && windowIds.size > 0,
      missing,
      clientsMissingAny,
      perClient: { min: counts[0] ?? 0, median: counts[Math.floor(counts.length / 2)] ?? 0, max: counts.at(-1) ?? 0 },
      lagMs: { p50: r1d(quantile(lags, 0.5)), p99: r1d(quantile(lags, 0.99)), max: r1d(lags.at(-1) ?? NaN) },
      resyncs,
      streamsEnded: ended,
      clientCpuS,
      clientCoreShare: cpuB.map((b, i) => Math.round(((b - (cpuA[i] ?? 0)) / windowS) * 100) / 100),
      serverCpu: srvCpu,
      serverCoreShare: Math.round((srvTotal / windowS) * 100) / 100,
      bytesReceived: bytes,
      firstError: firstError ?? ingest.firstError,
    };
  } finally {
    for (const c of children) {
      try {
        c.proc.kill("SIGKILL");
      } catch {}
    }
    await Promise.all(children.map((c) => c.proc.exited));
  }
}
