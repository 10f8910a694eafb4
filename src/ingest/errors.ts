// Typed errors of the ingest door, discriminated by `code`.
// The status travels as data so the server's error handler stays the one place that writes responses.

/** Why a whole request body was refused (as opposed to one event in it). */
export type BodyErrorCode = "malformed_json" | "invalid_utf8" | "too_many_events" | "unsupported_media_type";

/** The HTTP status each body error maps to; 400 for bad content, 413 for too much, 415 for the wrong type. */
export const BODY_ERROR_STATUS = Object.freeze({
  malformed_json: 400,
  invalid_utf8: 400,
  too_many_events: 413,
  unsupported_media_type: 415,
} as const satisfies Record<BodyErrorCode, 400 | 413 | 415>);

/** A refused body, shaped to sit in a `{ ok: false }` result. */
export interface BodyError {
  ok: false;
  code: BodyErrorCode;
  status: (typeof BODY_ERROR_STATUS)[BodyErrorCode];
  message: string;
}

/** Build a body error with the status that belongs to its code. */
export function bodyError(code: BodyErrorCode, message: string): BodyError {
  return { ok: false, code, status: BODY_ERROR_STATUS[code], message };
}
