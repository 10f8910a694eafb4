// Real-time driver for demo traffic: on every tick, hands the sink all events whose simulated time has come.
// The simulated clock is the wall clock, so events carry "now"; a slow sink delays delivery but never overlaps it.

import { createGenerator, type Generator, type GeneratorOptions } from "./generator.ts";
import type { WireEvent } from "./wire.ts";

/** Calls `tick` every `everyMs` until the returned cancel function runs. */
export type Scheduler = (tick: () => void, everyMs: number) => () => void;

export interface RealtimeOptions extends GeneratorOptions {
  /** average events per second */
  rate: number;
  /** batch interval, default 100 ms */
  tickMs?: number;
  /** default true */
  bursts?: boolean;
  /** default false, so the delivered rate matches `rate` at any hour */
  diurnal?: boolean;
  sink: (batch: WireEvent[]) => void | Promise<void>;
  /** default Date.now */
  clock?: () => number;
  /** default setInterval */
  schedule?: Scheduler;
  /** when the sink falls further behind than this, the backlog is skipped rather than replayed, default 10 s */
  maxLagMs?: number;
  /** receives sink errors (thrown or rejected); they never stop the driver */
  onError?: (err: unknown) => void;
}

export interface Realtime {
  stop(): void;
  readonly generator: Generator;
}

const intervalScheduler: Scheduler = (tick, everyMs) => {
  const h = setInterval(tick, everyMs);
  return () => clearInterval(h);
};

/** Starts emitting events timestamped at wall-clock time, about `rate` per second, in batches every tickMs. */
export function startRealtime(opts: RealtimeOptions): Realtime {
  const clock = opts.clock ?? Date.now;
  const tickMs = opts.tickMs ?? 100;
  const maxLag = opts.maxLagMs ?? 10_000;
  const onError = opts.onError ?? (() => {});
  const gen = createGenerator({
    ...opts,
    startTime: opts.startTime ?? clock(),
    diurnal: opts.diurnal ?? false,
    bursts: opts.bursts ?? true,
  });
  let busy = false;
  let stopped = false;

  const tick = (): void => {
    if (stopped || busy) return;
    const now = clock();
    if (now - gen.now > maxLag) gen.skipTo(now - tickMs);
    const batch = gen.until(now);
    if (batch.length === 0) return;
    try {
      const r = opts.sink(batch);
      if (r instanceof Promise) {
        busy = true;
        r.then(
          () => {
            busy = false;
          },
          (err: unknown) => {
            busy = false;
            onError(err);
          },
        );
      }
    } catch (err) {
      onError(err);
    }
  };

  const cancel = (opts.schedule ?? intervalScheduler)(tick, tickMs);
  return {
    stop() {
      stopped = true;
      cancel();
    },
    generator: gen,
  };
}
