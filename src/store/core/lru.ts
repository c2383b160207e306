/** A bounded map that forgets the least recently used key. */
export class Lru<K, V> {
  private readonly items = new Map<K, V>();
  constructor(private readonly limit: number) {}

  get(k: K): V | undefined {
    const v = this.items.get(k);
    if (v !== undefined) {
      this.items.delete(k);
      this.items.set(k, v);
    }
    return v;
  }

  set(k: K, v: V): void {
    this.items.delete(k);
    this.items.set(k, v);
    if (this.items.size > this.limit) this.items.delete(this.items.keys().next().value as K);
  }

  delete(k: K): void {
    this.items.delete(k);
  }

  clear(): void {
    this.items.clear();
  }
}
