/**
 * Bind groups keyed by (bind group layout, uniform slot bytes, buffers in binding
 * order), looked up through a trie of maps keyed by the objects themselves: a hit
 * builds no string and allocates nothing, which matters because it runs on every
 * dispatch (a string key of the program name and buffer ids used to be built per
 * dispatch).
 */

/** One trie node: the bind group of the path so far (when complete) and the next buffers. */
export interface BindGroupSlot {
  group: GPUBindGroup | null;
  next: Map<GPUBuffer, BindGroupSlot> | null;
}

/** Anything that holds a buffer to bind (the webgpu backend's storages). */
interface HasBuffer {
  readonly buffer: GPUBuffer;
}

const newSlot = (): BindGroupSlot => ({ group: null, next: null });

/** The cache; `size` counts the bind groups stored, so the owner can bound it. */
export class BindGroupCache {
  private readonly roots = new Map<GPUBindGroupLayout, Map<number, BindGroupSlot>>();
  size = 0;

  /**
   * The slot of (`layout`, `slotBytes`, the buffers of `inputs` then `outputs`),
   * created empty where missing. Its `group` is null until {@link BindGroupCache.store}.
   */
  slot(layout: GPUBindGroupLayout, slotBytes: number, inputs: readonly HasBuffer[], outputs: readonly HasBuffer[]): BindGroupSlot {
    let bySize = this.roots.get(layout);
    if (!bySize) {
      bySize = new Map();
      this.roots.set(layout, bySize);
    }
    let node = bySize.get(slotBytes);
    if (!node) {
      node = newSlot();
      bySize.set(slotBytes, node);
    }
    for (let i = 0; i < inputs.length; i++) node = child(node, inputs[i].buffer);
    for (let i = 0; i < outputs.length; i++) node = child(node, outputs[i].buffer);
    return node;
  }

  /** Stores `group` in `slot` (from {@link BindGroupCache.slot} of this cache, before any clear). */
  store(slot: BindGroupSlot, group: GPUBindGroup): void {
    if (!slot.group) this.size++;
    slot.group = group;
  }

  /** Forgets every bind group (their buffers may have been destroyed). */
  clear(): void {
    this.roots.clear();
    this.size = 0;
  }
}

function child(node: BindGroupSlot, buffer: GPUBuffer): BindGroupSlot {
  node.next ??= new Map();
  let c = node.next.get(buffer);
  if (!c) {
    c = newSlot();
    node.next.set(buffer, c);
  }
  return c;
}
