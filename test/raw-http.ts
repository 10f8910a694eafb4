// A raw HTTP/1.x client over TCP for probes no fetch client can send: any request line, a missing or
// malformed Host, duplicate headers, bodies that lie about their length. It reads the response head
// (and, unless told otherwise, the body up to `maxBody` bytes or the connection's end) and hangs up.

export interface RawResponse {
  /** status code, or 0 when the server closed without answering */
  status: number;
  /** lower-cased header names; a repeated header keeps its last value */
  headers: Record<string, string>;
  body: string;
  /** the whole text received (for 1xx interim answers before the final one) */
  raw: string;
}

export interface RawOptions {
  /** give up after this long (default 5 s) */
  timeoutMs?: number;
  /** stop after the head (streams never end) */
  headOnly?: boolean;
  /** bytes of body to wait for at most (default 64 KiB) */
  maxBody?: number;
}

/** Sends `text` as-is to 127.0.0.1:port and returns the first final response. */
export async function rawRequest(port: number, text: string | Uint8Array, opts: RawOptions = {}): Promise<RawResponse> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  const maxBody = opts.maxBody ?? 65536;
  let buf = "";
  const { promise, resolve } = Promise.withResolvers<void>();
  const finished = (): boolean => {
    const head = finalHead(buf);
    if (head === null) return false;
    if (opts.headOnly) return true;
    const len = Number(head.headers["content-length"] ?? NaN);
    const body = buf.length - head.end;
    if (Number.isFinite(len)) return body >= len;
    return body >= maxBody;
  };
  const socket = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      data(_s, d) {
        buf += new TextDecoder().decode(d);
        if (finished()) resolve();
      },
      close: () => resolve(),
      error: () => resolve(),
    },
  });
  socket.write(text);
  const timer = setTimeout(resolve, timeoutMs);
  await promise;
  clearTimeout(timer);
  socket.end();
  const head = finalHead(buf);
  if (head === null) return { status: 0, headers: {}, body: "", raw: buf };
  return { status: head.status, headers: head.headers, body: buf.slice(head.end), raw: buf };
}

/** The first non-1xx response head in `buf`, or null while incomplete. */
function finalHead(buf: string): { status: number; headers: Record<string, string>; end: number } | null {
  let at = 0;
  for (;;) {
    const end = buf.indexOf("\r\n\r\n", at);
    if (end < 0) return null;
    const lines = buf.slice(at, end).split("\r\n");
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
    if (m === null) return null;
    const status = Number(m[1]);
    if (status >= 100 && status < 200 && status !== 101) {
      at = end + 4;
      continue;
    }
    const headers: Record<string, string> = {};
    for (const l of lines.slice(1)) {
      const c = l.indexOf(":");
      if (c > 0) headers[l.slice(0, c).trim().toLowerCase()] = l.slice(c + 1).trim();
    }
    return { status, headers, end: end + 4 };
  }
}

/** A request head; `host` null leaves the Host header out. */
export function requestHead(method: string, target: string, host: string | null, headers: Record<string, string> = {}, version = "1.1"): string {
  let h = `${method} ${target} HTTP/${version}\r\n`;
  if (host !== null) h += `Host: ${host}\r\n`;
  for (const [k, v] of Object.entries(headers)) h += `${k}: ${v}\r\n`;
  return h + "\r\n";
}

/** Runs `fn` over `items` with at most `n` in flight. */
export async function pool<T, R>(items: readonly T[], n: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  return out;
}
