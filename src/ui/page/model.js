// The store's state (GET /api/state: ls, du and stats --json) joined per image.

/**
 * images: name → { name, kind, parent, virtualSize, ownBytes, createdAt,
 *   referencedBytes, exclusiveBytes, sharedBytes, base, aboveBaseBytes,
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
  // Drift: what a chain has written above its base, the sum of the own bytes of every image
  // between the base (excluded) and this one (included). Memoized, iteratively: chains can be deep.
  const above = new Map();
  for (const img of images.values()) {
    const path = [];
    let cur = img;
    while (cur && !above.has(cur.name)) {
      path.push(cur);
      cur = cur.parent === null ? null : images.get(cur.parent);
    }
    for (let k = path.length - 1; k >= 0; k--) {
      const p = path[k];
      const parent = p.parent === null ? null : images.get(p.parent);
      if (!parent) above.set(p.name, { base: p.name, bytes: 0 });
      else {
        const a = above.get(parent.name);
        above.set(p.name, { base: a.base, bytes: a.bytes + p.ownBytes });
      }
    }
  }
  for (const img of images.values()) {
    const a = above.get(img.name);
    img.base = a.base === img.name ? null : a.base;
    img.aboveBaseBytes = a.bytes;
  }
  return { images, stats: state.stats, open: state.open };
}

/** Case-insensitive substring of name, kind or parent; '' matches everything. */
export function matcher(query) {
  const q = query.trim().toLowerCase();
  if (!q) return null;
  return (img) => img.name.toLowerCase().includes(q) || img.kind === q || (img.parent ?? '').toLowerCase().includes(q);
}
