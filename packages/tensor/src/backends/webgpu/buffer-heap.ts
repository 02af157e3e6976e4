/**
 * Free buffers of one size class, handed out lowest id first (a binary min-heap). The
 * pool's choice of buffer then depends only on which buffers are free, not on the
 * order they were released in, so a training loop that repeats the same allocations
 * gets the same buffers every step and the bind groups naming them stay cached.
 */
export class BufferHeap {
  private readonly buffers: GPUBuffer[] = [];
  private readonly ids: number[] = [];

  get size(): number {
    return this.buffers.length;
  }

  push(buffer: GPUBuffer, id: number): void {
    const b = this.buffers;
    const k = this.ids;
    let i = b.length;
    b.push(buffer);
    k.push(id);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (k[parent] <= id) break;
      b[i] = b[parent];
      k[i] = k[parent];
      i = parent;
    }
    b[i] = buffer;
    k[i] = id;
  }

  /** The free buffer with the lowest id, removed; undefined when empty. */
  pop(): GPUBuffer | undefined {
    const b = this.buffers;
    const k = this.ids;
    if (b.length === 0) return undefined;
    const top = b[0];
    const lastB = b.pop()!;
    const lastK = k.pop()!;
    const n = b.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const c = l + 1 < n && k[l + 1] < k[l] ? l + 1 : l;
        if (k[c] >= lastK) break;
        b[i] = b[c];
        k[i] = k[c];
        i = c;
      }
      b[i] = lastB;
      k[i] = lastK;
    }
    return top;
  }

  /** Every buffer held (any order), emptying the heap. */
  drain(): GPUBuffer[] {
    const all = this.buffers.splice(0);
    this.ids.length = 0;
    return all;
  }
}
