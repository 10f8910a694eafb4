// Typed errors of engine start: what the operator has to fix before rtae can run, as one line that
// `rtae serve` prints after "rtae: cannot start: ". A `code` discriminant, `retriable` for supervisors.

export type StartErrorCode =
  | "data_dir_in_use" // another rtae (process or engine in this process) holds the data dir's lock
  | "data_dir_unusable" // the data dir or its lock file cannot be created or opened
  | "service_unavailable"; // Kafka, Cassandra or Redis could not be reached or used at start

export type Service = "Kafka" | "Cassandra" | "Redis";

/** Refused engine start; the message is one line naming what to fix, never a stack or a driver dump. */
export class StartError extends Error {
  readonly retriable: boolean;
  /** the service that failed, for service_unavailable */
  readonly service: Service | null;
  constructor(
    readonly code: StartErrorCode,
    message: string,
    options: { cause?: unknown; service?: Service } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "StartError";
    this.service = options.service ?? null;
    // the holder may exit and a service may come up: starting again later can succeed; a broken dir cannot
    this.retriable = code !== "data_dir_unusable";
  }
}

const NET_CODES = /\b(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN|EPIPE|ECONNABORTED)\b/;

/**
 * The short cause of a connection failure for the start line: "connect ECONNREFUSED", "getaddrinfo ENOTFOUND",
 * or the first line of the driver's message without the address it repeats. Null when nothing usable is in it.
 */
export function failureReason(message: string | null | undefined): string | null {
  if (!message) return null;
  const net = NET_CODES.exec(message);
  if (net !== null) {
    const verb = /\b(connect|getaddrinfo|read|write)\s+E[A-Z]+/.exec(message);
    return verb !== null && verb[0].endsWith(net[1]) ? `${verb[1]} ${net[1]}` : net[1];
  }
  const first = message.split("\n", 1)[0].trim();
  if (first === "") return null;
  return first.length > 160 ? `${first.slice(0, 157)}...` : first;
}

/**
 * "Cassandra at 127.0.0.1:1 is unreachable (connect ECONNREFUSED); start it or fix --cassandra-contact-points".
 * A reason that is not about the network (a refused password) says "is not usable" instead.
 */
export function unreachable(service: Service, address: string, flag: string, reason: string | null, cause?: unknown): StartError {
  const network = reason === null || NET_CODES.test(reason) || /timed? ?out|no answer|connect|resolv/i.test(reason);
  return new StartError(
    "service_unavailable",
    `${service} at ${address} ${network ? "is unreachable" : "is not usable"}${reason === null ? "" : ` (${reason})`}; start it or fix --${flag}`,
    { cause, service },
  );
}
