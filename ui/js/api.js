// The dashboard's JSON API. Errors come back as `{"error": "..."}`; they are thrown as
// ApiError so a view can show the message next to what the person did.

export class ApiError extends Error {
  constructor(message, status, problems = []) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    // A refused file's problems by line: [{ line, message }].
    this.problems = problems;
  }
}

/** `/api/uploads?study=189&...`, leaving out empty values. */
export function apiUrl(path, params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== '') query.set(key, String(value));
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

/** `file`: a body sent as it is (`{ bytes, type }`) instead of `body` as JSON. */
async function call(method, url, body, signal, file) {
  let response;
  const headers = { Accept: 'application/json' };
  if (file) headers['Content-Type'] = file.type;
  else if (body !== undefined) headers['Content-Type'] = 'application/json';
  try {
    response = await fetch(url, {
      method,
      signal,
      headers,
      body: file ? file.bytes : body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError('cpwatch is not answering. Is `cpwatch serve` still running?', 0);
  }
  let data = null;
  const text = await response.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const message = data && typeof data.error === 'string' ? data.error : `request failed (HTTP ${response.status})`;
    const problems = data && Array.isArray(data.problems) ? data.problems : [];
    throw new ApiError(message, response.status, problems);
  }
  return data;
}

export const get = (path, params, signal) => call('GET', apiUrl(path, params), undefined, signal);
export const put = (path, body, signal) => call('PUT', path, body, signal);
export const post = (path, body, signal) => call('POST', path, body ?? {}, signal);
/** Posts a file's bytes (a CSV roster) as the request body. */
export const postFile = (path, bytes, type, signal) => call('POST', path, undefined, signal, { bytes, type });
// DELETE has no body, but still says it speaks JSON (the server checks Origin, not this).
export const del = (path, signal) => call('DELETE', path, {}, signal);

/** `/api/uploads/189/85045`: each segment encoded. */
export function path(...segments) {
  return '/api/' + segments.map((seg) => encodeURIComponent(String(seg))).join('/');
}
