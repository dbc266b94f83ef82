// Hash routes: `#/uploads?study=189&status=error`. The part after `?` holds a view's
// filters, so every view can be bookmarked and survives a reload.

/** The current route: path segments (decoded) and query parameters. */
export function parseHash(hash = location.hash) {
  let raw = String(hash || '').replace(/^#/, '');
  if (!raw.startsWith('/')) raw = '/overview';
  const at = raw.indexOf('?');
  const pathPart = at >= 0 ? raw.slice(0, at) : raw;
  const query = new URLSearchParams(at >= 0 ? raw.slice(at + 1) : '');
  const segments = pathPart.split('/').filter(Boolean).map((seg) => {
    try {
      return decodeURIComponent(seg);
    } catch {
      return seg;
    }
  });
  return { segments, query };
}

/** `#/uploads/189/85045?x=1`, every segment encoded, empty parameters left out. */
function hashFor(segments, params) {
  const pathText = '#/' + segments.map((seg) => encodeURIComponent(String(seg))).join('/');
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== '' && value !== false) query.set(key, String(value));
  }
  const text = query.toString();
  return text ? `${pathText}?${text}` : pathText;
}

/** Picks the named parameters from a route's query (missing ones as ''). */
export function pick(query, names) {
  return Object.fromEntries(names.map((name) => [name, (query.get(name) || '').trim()]));
}

export const links = {
  overview: () => '#/overview',
  setup: () => '#/setup',
  uploads: (filters) => hashFor(['uploads'], filters),
  upload: (study, upload) => hashFor(['uploads', study, upload]),
  subjects: (study) => hashFor(['subjects'], { study }),
  subject: (study, subject) => hashFor(['subjects', study, subject]),
  // `#/compliance/{study}` is also where the desktop app's digest notification opens.
  compliance: (study, params) => hashFor(study === undefined || study === null || study === '' ? ['compliance'] : ['compliance', study], params),
  deliveries: (filters) => hashFor(['deliveries'], filters),
  delivery: (seq) => hashFor(['deliveries', seq]),
  settings: (section) => hashFor(['settings'], { section }),
};
