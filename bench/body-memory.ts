// Resident memory of a server receiving 100 concurrent 10 MiB POSTs: readBody with a 64 MiB budget
// against the old whole-body `arrayBuffer()` read. The clients run in a child process so the RSS
// sampled here is the server's alone; by default each body is paced (64 KiB every --pace ms, with its
// Content-Length) so that all uploads are in flight at once, as over a real network. Standalone, not
// part of `npm run bench`; stops within 60 s.
//
//   bun bench/body-memory.ts [--reader=readBody|arrayBuffer] [--encoding=identity|gzip] [--clients=100] [--pace=2]

import { spawn } from "node:child_process";
import zlib from "node:zlib";
import { createBodyBudget, readBody } from "../src/server/body.ts";

const MiB = 1024 * 1024;
const MAX_BYTES = 10 * MiB;
const BUDGET_BYTES = 64 * MiB;
const HARD_STOP_MS = 55_000;

const arg = (name: string, fallback: string) =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;

/** 10 MiB of NDJSON-like text, the same on both sides. */
function body(): Uint8Array {
  const line = new TextEncoder().encode(`{"eventId":"e0000000","type":"page_view","timestamp":1700000000000,"page":"/p"}\n`);
  const out = new Uint8Array(MAX_BYTES);
  for (let at = 0; at < out.length; at += line.length) out.set(line.subarray(0, Math.min(line.length, out.length - at)), at);
  return out;
}

const PIECE = 64 * 1024;

/** The body as a stream of 64 KiB views of `payload`, one every `paceMs` (0: the buffer itself). */
function paced(payload: Uint8Array, paceMs: number): BodyInit {
  if (paceMs <= 0) return payload as Uint8Array<ArrayBuffer>;
  let at = 0;
  return new ReadableStream<Uint8Array>({
    async pull(c) {
      if (at >= payload.length) return c.close();
      await Bun.sleep(paceMs);
      c.enqueue(payload.subarray(at, at + PIECE));
      at += PIECE;
    },
  });
}

async function client(port: number, clients: number, encoding: string, paceMs: number): Promise<void> {
  const plain = body();
  const payload = encoding === "gzip" ? new Uint8Array(zlib.gzipSync(plain)) : plain;
  const statuses: Record<string, number> = {};
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      let key: string;
      try {
        const res = await fetch(`http://127.0.0.1:${port}/api/events`, {
          method: "POST",
          body: paced(payload, paceMs),
          headers: { "content-length": String(payload.length), "content-type": "application/x-ndjson", ...(encoding === "gzip" ? { "content-encoding": "gzip" } : {}) },
          signal: AbortSignal.timeout(45_000),
          duplex: "half",
        } as RequestInit);
        await res.arrayBuffer();
        key = String(res.status);
      } catch (err) {
        key = `error:${(err as Error).name}`;
      }
      statuses[key] = (statuses[key] ?? 0) + 1;
    }),
  );
  console.log(JSON.stringify({ statuses, ms: Math.round(performance.now() - t0), wireBytes: payload.length }));
}

async function main(): Promise<void> {
  const reader = arg("reader", "readBody");
  const encoding = arg("encoding", "identity");
  const clients = Number(arg("clients", "100"));
  const pace = Number(arg("pace", "2"));
  const budget = createBodyBudget(BUDGET_BYTES);
  let peakInFlight = 0;

  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    maxRequestBodySize: 2 * MAX_BYTES,
    async fetch(request) {
      if (reader === "arrayBuffer") {
        // the door before readBody: a Content-Length check, then the whole body at once
        const len = Number(request.headers.get("content-length") ?? "0");
        if (len > MAX_BYTES) return new Response(null, { status: 413 });
        const bytes = new Uint8Array(await request.arrayBuffer());
        return Response.json({ bytes: bytes.length });
      }
      const r = await readBody(request, { maxBytes: MAX_BYTES, budget });
      peakInFlight = Math.max(peakInFlight, budget.inFlight);
      if (r.ok) return Response.json({ bytes: r.bytes.length });
      return Response.json({ error: { code: r.code, message: r.message } }, { status: r.status, headers: r.headers });
    },
  });

  Bun.gc(true);
  const baseline = process.memoryUsage.rss();
  let peak = baseline;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
    peakInFlight = Math.max(peakInFlight, budget.inFlight);
  }, 5);

  const child = spawn(process.execPath, [import.meta.path, `--client=${server.port}`, `--clients=${clients}`, `--encoding=${encoding}`, `--pace=${pace}`], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const hardStop = setTimeout(() => {
    console.error(`body-memory: no result after ${HARD_STOP_MS / 1000} s, stopping`);
    child.kill("SIGKILL");
    server.stop(true);
    process.exit(1);
  }, HARD_STOP_MS);

  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
  clearTimeout(hardStop);
  clearInterval(sampler);
  server.stop(true);
  if (code !== 0) throw new Error(`client process exited with ${code}`);
  const result = JSON.parse(out.trim().split("\n").pop()!) as { statuses: Record<string, number>; ms: number; wireBytes: number };

  const mb = (b: number) => (b < MiB ? `${(b / 1024).toFixed(0)} KiB` : `${(b / MiB).toFixed(0)} MiB`);
  console.log(
    [
      `reader ${reader}, encoding ${encoding}, ${clients} concurrent POSTs of 10 MiB (${mb(result.wireBytes)} on the wire each, ${pace > 0 ? `64 KiB every ${pace} ms` : "unpaced"})`,
      `  statuses     ${JSON.stringify(result.statuses)} in ${result.ms} ms`,
      `  server RSS   baseline ${mb(baseline)}, peak ${mb(peak)} (+${mb(peak - baseline)})`,
      reader === "readBody" ? `  budget       peak reserved ${mb(peakInFlight)} of ${mb(BUDGET_BYTES)}; left reserved ${budget.inFlight}` : "",
    ]
      .filter(Boolean)
      .join("\n"),
  );
}

const clientPort = arg("client", "");
if (clientPort !== "") await client(Number(clientPort), Number(arg("clients", "100")), arg("encoding", "identity"), Number(arg("pace", "2")));
else await main();
