// A TCP forwarder for outage tests: puts a real server (Cassandra, Redis) behind a port that can be cut
// and restored without touching the server. Backpressure is end to end: when one side cannot take more,
// the other side's reads are paused until it drains, so large frames pass without unbounded buffering.

import type { Socket, TCPSocketListener } from "bun";

export type BlockMode = "reset" | "blackhole";

export interface TcpProxy {
  readonly host: string;
  readonly port: number;
  readonly blocked: boolean;
  /**
   * Cuts the target off. "reset" (default): every open connection is reset and new ones are reset as soon
   * as they are accepted, so clients fail fast. "blackhole": connections stay open (and new ones are
   * accepted) but no byte passes, so clients only notice through their own timeouts; unblock() resets them.
   */
  block(mode?: BlockMode): void;
  /** Forwards again; connections cut while blocked stay cut, clients reconnect. */
  unblock(): void;
  /** Counters since start, for asserting that traffic really went through the proxy. */
  stats(): { accepted: number; reset: number; open: number; bytesUp: number; bytesDown: number };
  /** Closes the listener and every connection. */
  stop(): void;
}

interface Pair {
  client: Socket<Pair>;
  upstream: Socket<Pair> | null;
  /** bytes waiting for the upstream (connect pending or backpressure) */
  toUpstream: Uint8Array[];
  toClient: Uint8Array[];
  clientEnded: boolean;
  upstreamEnded: boolean;
  /** blackholed: bytes are swallowed until unblock() resets the connection */
  black: boolean;
  dead: boolean;
}

/** Starts a forwarder on a free 127.0.0.1 port to targetHost:targetPort. */
export async function startTcpProxy(opts: { targetHost?: string; targetPort: number }): Promise<TcpProxy> {
  const targetHost = opts.targetHost ?? "127.0.0.1";
  const pairs = new Set<Pair>();
  let mode: BlockMode | null = null;
  const st = { accepted: 0, reset: 0, bytesUp: 0, bytesDown: 0 };

  const kill = (p: Pair) => {
    if (p.dead) return;
    p.dead = true;
    pairs.delete(p);
    p.toUpstream.length = 0;
    p.toClient.length = 0;
    // terminate() sends RST (SO_LINGER 0): the client sees a reset, not a clean end of stream
    p.client.terminate();
    p.upstream?.terminate();
  };

  /** Writes queued chunks, then the new one; returns false when the destination is full. */
  const pump = (dst: Socket<Pair>, queue: Uint8Array[], chunk: Uint8Array | null): boolean => {
    if (chunk !== null) queue.push(chunk);
    while (queue.length > 0) {
      const head = queue[0];
      const n = dst.write(head);
      if (n < 0) return false;
      if (n < head.byteLength) {
        // the socket's buffer is full: keep the rest (copied, the callback's buffer may be reused)
        queue[0] = head.slice(n);
        return false;
      }
      queue.shift();
    }
    return true;
  };

  const forward = (p: Pair, dir: "up" | "down", data: Uint8Array) => {
    if (p.dead || p.black) return;
    if (dir === "up") st.bytesUp += data.byteLength;
    else st.bytesDown += data.byteLength;
    const src = dir === "up" ? p.client : p.upstream!;
    const dst = dir === "up" ? p.upstream : p.client;
    const queue = dir === "up" ? p.toUpstream : p.toClient;
    const copy = new Uint8Array(data); // own the bytes: they may wait in the queue past this callback
    if (dst === null) {
      queue.push(copy);
      src.pause();
      return;
    }
    if (!pump(dst, queue, copy)) src.pause();
  };

  /** After a side ended: end the other once what is queued for it has been written. */
  const finish = (p: Pair) => {
    // a blackholed client is held open on purpose, whatever its server side did
    if (p.dead || p.black) return;
    if (p.upstreamEnded && p.toClient.length === 0) p.client.end();
    if (p.clientEnded && p.toUpstream.length === 0) p.upstream?.end();
    if (p.clientEnded && p.upstreamEnded) {
      p.dead = true;
      pairs.delete(p);
    }
  };

  const connectUpstream = (p: Pair) => {
    Bun.connect<Pair>({
      hostname: targetHost,
      port: opts.targetPort,
      data: p,
      socket: {
        open(s) {
          if (p.dead || p.black) return void s.terminate();
          p.upstream = s;
          if (pump(s, p.toUpstream, null)) p.client.resume();
          finish(p);
        },
        data(_s, data) {
          forward(p, "down", data);
        },
        drain(s) {
          if (!p.dead && pump(s, p.toUpstream, null)) {
            p.client.resume();
            finish(p);
          }
        },
        end() {
          p.upstreamEnded = true;
          finish(p);
        },
        close() {
          p.upstreamEnded = true;
          finish(p);
        },
        error() {
          kill(p);
        },
        connectError() {
          kill(p);
        },
      },
    }).catch(() => kill(p));
  };

  const listener: TCPSocketListener<Pair> = Bun.listen<Pair>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(client) {
        st.accepted++;
        if (mode === "reset") {
          st.reset++;
          return void client.terminate();
        }
        const p: Pair = { client, upstream: null, toUpstream: [], toClient: [], clientEnded: false, upstreamEnded: false, black: mode === "blackhole", dead: false };
        client.data = p;
        pairs.add(p);
        if (!p.black) connectUpstream(p);
      },
      data(client, data) {
        forward(client.data, "up", data);
      },
      drain(client) {
        const p = client.data;
        if (p && !p.dead && pump(client, p.toClient, null)) {
          p.upstream?.resume();
          finish(p);
        }
      },
      end(client) {
        const p = client.data;
        if (!p) return;
        p.clientEnded = true;
        finish(p);
      },
      close(client) {
        const p = client.data;
        if (!p) return;
        p.clientEnded = true;
        if (p.black) {
          p.dead = true;
          pairs.delete(p);
          return;
        }
        // the client is gone for good: nothing queued for it can be delivered
        p.toClient.length = 0;
        finish(p);
        if (!p.dead) p.upstream?.end();
      },
      error(client) {
        if (client.data) kill(client.data);
      },
    },
  });

  return {
    host: "127.0.0.1",
    port: listener.port,
    get blocked() {
      return mode !== null;
    },
    block(m: BlockMode = "reset") {
      mode = m;
      for (const p of [...pairs]) {
        if (m === "reset") {
          st.reset++;
          kill(p);
        } else {
          p.black = true;
          p.toUpstream.length = 0;
          p.toClient.length = 0;
          // the server side of a blackholed connection is of no use any more; the client keeps waiting
          p.upstream?.terminate();
          p.upstream = null;
          p.client.resume();
        }
      }
    },
    unblock() {
      mode = null;
      // a blackholed connection has lost bytes in both directions: it cannot resume, so reset it
      for (const p of [...pairs]) if (p.black) {
        st.reset++;
        kill(p);
      }
    },
    stats: () => ({ ...st, open: pairs.size }),
    stop() {
      mode = "reset";
      for (const p of [...pairs]) kill(p);
      listener.stop(true);
    },
  };
}
