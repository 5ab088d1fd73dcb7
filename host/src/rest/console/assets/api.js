// The REST API, called with the token the user typed. The token lives in this tab's
// sessionStorage (gone when the tab closes) and travels as `Authorization: Bearer`, never in a
// cookie: another site the browser visits cannot act with it.

const TOKEN_KEY = "headwater.rest.token";

/** A refused or failed call: the HTTP status and the API's own message. */
export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

const unauthorizedListeners = [];

/** Calls `listener(error)` whenever the API answers 401 (no token, or a wrong one). */
export function onUnauthorized(listener) {
  unauthorizedListeners.push(listener);
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  sessionStorage.setItem(TOKEN_KEY, value);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** One API call; resolves to the parsed JSON answer (or text, or null when empty). */
export async function call(method, path, body) {
  const headers = { Accept: "application/json" };
  const bearer = token();
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  const init = { method, headers, cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, `Headwater did not answer (${e.message}): is it running?`, null);
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!response.ok) {
    const message = (data && data.message) || `${response.status} ${response.statusText}`;
    const error = new ApiError(response.status, message, data);
    if (response.status === 401) unauthorizedListeners.forEach((listener) => listener(error));
    throw error;
  }
  return data;
}

export const get = (path) => call("GET", path);

/** A connector's path under /connectors. */
export const connectorPath = (name, rest = "") => `/connectors/${encodeURIComponent(name)}${rest}`;
