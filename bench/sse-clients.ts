// Child process of the fan-out bench: holds N SSE streams (plain fetch) and records, per client, the id and
// receive time (epoch ms, sub-ms) of each frame. Started with BUN_CONFIG_MAX_HTTP_REQUESTS raised, or fetch caps at 256.
// Protocol: argv url n maxMs; prints one JSON line when connected, then one with the records on "stop" (stdin) or at maxMs.

import { chunks } from "./live-feed.ts";

const [url, nArg, maxArg] = process.argv.slice(2);
const n = Number(nArg);
const maxMs = Number(maxArg);
if (!url || !Number.isInteger(n) || n < 1 || n > 10_000 || !(maxMs > 0 && maxMs <= 600_000)) {
  process.stderr.write("usage: sse-clients.ts <url> <1..10000> <maxMs ≤ 600000>\n");
  process.exit(2);
}

interface Client {
  ids: number[];
  at: number[];
  snapshots: number;
  bytes: number;
  ended: boolean;
  error: string | null;
}

const epoch = () => performance.timeOrigin + performance.now();
const clients: Client[] = [];
const controllers: AbortController[] = [];
const t0 = performance.now();
const cpu0 = process.cpuUsage();

async function run(c: Client, ac: AbortController, opened: () => void, failed: (e: string) => void): Promise<void> {
  let res: Response;
  try {
    res = await fetch(url, { signal: ac.signal, headers: { accept: "text/event-stream" } });
  } catch (err) {
    c.error = (err as Error).message;
    failed(c.error);
    return;
  }
  if (res.status !== 200 || !res.body) {
    c.error = `HTTP ${res.status}`;
    failed(c.error);
    return;
  }
  opened();
  const dec = new TextDecoder();
  let carry = "";
  try {
    for await (const chunk of chunks(res.body)) {
      const at = epoch();
      c.bytes += chunk.length;
      carry += dec.decode(chunk, { stream: true });
      let end: number;
      // only the id and event lines are read: the data is not parsed, to keep this process cheap
      while ((end = carry.indexOf("\n\n")) >= 0) {
        const frame = carry.slice(0, end);
        carry = carry.slice(end + 2);
        if (!frame.startsWith("id: ")) continue;
        const nl = frame.indexOf("\n");
        const id = Number(frame.slice(4, nl));
        if (frame.startsWith("event: snapshot", nl + 1)) c.snapshots++;
        c.ids.push(id);
        c.at.push(at);
      }
    }
  } catch (err) {
    if (!ac.signal.aborted) c.error = (err as Error).message;
  }
  c.ended = true;
}

let ok = 0;
let failed = 0;
let firstError: string | null = null;
const all: Promise<void>[] = [];
// connect in waves of 100 so the listen backlog is never the thing measured
for (let i = 0; i < n; i += 100) {
  const wave: Promise<void>[] = [];
  for (let k = i; k < Math.min(n, i + 100); k++) {
    const c: Client = { ids: [], at: [], snapshots: 0, bytes: 0, ended: false, error: null };
    const ac = new AbortController();
    clients.push(c);
    controllers.push(ac);
    const { promise, resolve } = Promise.withResolvers<void>();
    wave.push(promise);
    all.push(
      run(
        c,
        ac,
        () => (ok++, resolve()),
        (e) => (failed++, (firstError ??= e), resolve()),
      ),
    );
  }
  await Promise.race([Promise.all(wave), Bun.sleep(30_000)]);
}
process.stdout.write(JSON.stringify({ type: "connected", ok, failed, firstError, ms: Math.round(performance.now() - t0) }) + "\n");

let finished = false;
function finish(): void {
  if (finished) return;
  finished = true;
  for (const ac of controllers) ac.abort();
  const cpu = process.cpuUsage(cpu0);
  const line = JSON.stringify({
    type: "result",
    cpuS: (cpu.user + cpu.system) / 1e6,
    wallS: (performance.now() - t0) / 1000,
    clients: clients.map((c) => ({ ids: c.ids, at: c.at.map((x) => Math.round(x * 100) / 100), snapshots: c.snapshots, bytes: c.bytes, ended: c.ended, error: c.error })),
  });
  process.stdout.write(line + "\n", () => process.exit(0));
  // bounds the exit if stdout is gone
  setTimeout(() => process.exit(0), 5000);
}

setTimeout(finish, maxMs);
const dec = new TextDecoder();
for await (const chunk of chunks(Bun.stdin.stream())) {
  const text = dec.decode(chunk);
  // "mark": report CPU used so far, so the parent can take the CPU of a timed phase
  if (text.includes("mark")) {
    const c = process.cpuUsage(cpu0);
    process.stdout.write(JSON.stringify({ type: "mark", cpuS: (c.user + c.system) / 1e6 }) + "\n");
  }
  if (text.includes("stop")) {
    finish();
    break;
  }
}
