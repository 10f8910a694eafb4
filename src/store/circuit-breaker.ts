// Circuit breaker for calls to an external store: closed -> open after N consecutive failures,
// open -> half-open once the reset timeout has passed (checked lazily on the next call, clock injectable).

export type BreakerState = "closed" | "open" | "half-open";

export interface CircuitBreakerOptions {
  /** consecutive failures that open the circuit (>= 1) */
  failureThreshold: number;
  /** how long the circuit stays open before a probe is let through */
  resetTimeoutMs: number;
  /** probes allowed at once while half-open (default 1); other calls get the fallback */
  halfOpenMax?: number;
  /** milliseconds; default Date.now */
  clock?: () => number;
}

export interface CircuitBreaker {
  readonly state: BreakerState;
  /**
   * Runs `fn` unless the circuit is open; a rejected `fn` counts as a failure and is answered by
   * `fallback`, as is every call the circuit refuses. Only `fallback`'s own errors reach the caller.
   */
  run<T>(fn: () => Promise<T>, fallback: () => T | Promise<T>): Promise<T>;
  /** Called on every transition; returns a function that removes the listener. */
  onStateChange(cb: (to: BreakerState, from: BreakerState) => void): () => void;
}

/** Create a circuit breaker (see CircuitBreakerOptions). */
export function createCircuitBreaker(options: CircuitBreakerOptions): CircuitBreaker {
  const { failureThreshold, resetTimeoutMs } = options;
  const halfOpenMax = options.halfOpenMax ?? 1;
  const clock = options.clock ?? Date.now;
  if (!Number.isInteger(failureThreshold) || failureThreshold < 1) throw new RangeError("failureThreshold must be an integer >= 1");
  if (!(resetTimeoutMs >= 0)) throw new RangeError("resetTimeoutMs must be >= 0");
  if (!Number.isInteger(halfOpenMax) || halfOpenMax < 1) throw new RangeError("halfOpenMax must be an integer >= 1");

  let state: BreakerState = "closed";
  let failures = 0;
  let openedAt = 0;
  let probes = 0;
  const listeners = new Set<(to: BreakerState, from: BreakerState) => void>();

  function move(to: BreakerState): void {
    const from = state;
    if (from === to) return;
    state = to;
    if (to === "open") openedAt = clock();
    if (to === "closed") failures = 0;
    for (const cb of [...listeners]) {
      try {
        cb(to, from);
      } catch {
        // a listener must not break the breaker's bookkeeping
      }
    }
  }

  async function run<T>(fn: () => Promise<T>, fallback: () => T | Promise<T>): Promise<T> {
    if (state === "open" && clock() - openedAt >= resetTimeoutMs) move("half-open");
    if (state === "open") return fallback();
    const probe = state === "half-open";
    if (probe) {
      if (probes >= halfOpenMax) return fallback();
      probes++;
    }
    let ok = false;
    let result: T | undefined;
    try {
      result = await fn();
      ok = true;
    } catch {
      ok = false;
    }
    if (probe) probes--;
    if (ok) {
      // a call started while closed may finish after the circuit opened: only a probe closes it
      if (state === "half-open" && probe) move("closed");
      else if (state === "closed") failures = 0;
      return result as T;
    }
    if (state === "half-open" && probe) move("open");
    else if (state === "closed" && ++failures >= failureThreshold) move("open");
    return fallback();
  }

  return {
    get state() {
      return state;
    },
    run,
    onStateChange(cb) {
      listeners.add(cb);
      return () => listeners.delete(cb);
    },
  };
}
