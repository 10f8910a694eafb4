// Typed errors of the generator and producer, discriminated by `code`.
// `retriable` tells a caller (the CLI) whether running again unchanged could succeed.

export type GeneratorErrorCode = "invalid_options" | "http_status";

export class GeneratorError extends Error {
  override readonly name = "GeneratorError";
  constructor(
    readonly code: GeneratorErrorCode,
    message: string,
    readonly retriable = false,
    /** HTTP status, for "http_status" */
    readonly status?: number,
  ) {
    super(message);
  }
}

/** Throws an invalid_options error unless the condition holds. */
export function check(cond: boolean, message: string): asserts cond {
  if (!cond) throw new GeneratorError("invalid_options", message);
}
