// The store's state (GET /api/state: ls, du and stats --json) joined per image.

/**
 * images: name → { name, kind, parent, virtualSize, ownBytes, createdAt,
 *   referencedBytes, exclusiveBytes, sharedBytes, base, origin, writtenBytes,
 *   children, clones, open: [{mode, pid, server}] }
 */
export function buildModel(state) {
  const usage = new Map(state.usage.map((u) => [u.name, u]));
  const open = new Map();
  for (const o of state.open) if (o.name !== null) open.set(o.name, [...(open.get(o.name) ?? []), o]);
  const images = new Map();
  for (const i of state.images) {
    const u = usage.get(i.name);
    images.set(i.name, {
      ...i,
      referencedBytes: u?.referencedBytes ?? 0,
      exclusiveBytes: u?.exclusiveBytes ?? 0,
      sharedBytes: u?.sharedBytes ?? 0,
      children: [],
      open: open.get(i.name) ?? [],
    });
  }
  for (const img of images.values()) if (img.parent !== null) images.get(img.parent)?.children.push(img.name);
  // The base: the top of each chain. Memoized, iteratively: chains can be deep.
  const baseOf = new Map();
  for (const img of images.values()) {
    const path = [];
    let cur = img;
    while (cur && !baseOf.has(cur.name)) {
      path.push(cur);
      cur = cur.parent === null ? null : images.get(cur.parent);
    }
    for (let k = path.length - 1; k >= 0; k--) {
      const p = path[k];
      const parent = p.parent === null ? null : images.get(p.parent);
      baseOf.set(p.name, parent ? baseOf.get(parent.name) : p.name);
    }
  }
  // Drift, as `zfs get written` counts it: what an image wrote since it was cloned. Its own bytes,
  // and those of its own snapshots (a snapshot of it that nothing else is built on), up to the image
  // it was cloned from. A layer that many clones share is their origin, never their drift.
  const snapshots = new Set(state.snapshots ?? []);
  for (const img of images.values()) {
    img.base = baseOf.get(img.name) === img.name ? null : baseOf.get(img.name);
    let written = img.ownBytes;
    let cur = img.parent === null ? null : images.get(img.parent);
    while (cur && snapshots.has(cur.name) && cur.children.length === 1) {
      written += cur.ownBytes;
      cur = cur.parent === null ? null : images.get(cur.parent);
    }
    img.origin = cur ? cur.name : null;
    img.writtenBytes = written;
  }
  return { images, stats: state.stats, open: state.open };
}

/** Case-insensitive substring of name, kind or parent; '' matches everything. */
export function matcher(query) {
  const q = query.trim().toLowerCase();
  if (!q) return null;
  return (img) => img.name.toLowerCase().includes(q) || img.kind === q || (img.parent ?? '').toLowerCase().includes(q);
}
