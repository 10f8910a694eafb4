// HTTP errors of the API: a code, a human message and the status, decided here and only here.

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "HttpError";
  }
}

export const badRequest = (code: string, message: string) => new HttpError(400, code, message);

export function errorBody(code: string, message: string): string {
  return JSON.stringify({ error: { code, message } });
}
