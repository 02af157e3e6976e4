import type { DType } from '../dtype.js';
import type { OpAttrs, OpName } from '../op-names.js';
import type { GradientSpec } from '../registry.js';
import type { Tensor } from '../tensor.js';

/**
 * One recorded op on the autograd tape. It holds what its gradient needs (saved
 * tensors share storage with the originals, so disposing a user handle never breaks
 * a pending backward) and references the nodes of its inputs.
 *
 * Nodes are reference counted: by the tensors they produced and by the nodes that
 * consumed those tensors. When the count drops to zero (every tensor of a branch
 * disposed without backward) the saved tensors are released.
 */
export class GradNode {
  refs = 1;
  /** Saved tensors released (after backward without retainGraph). */
  freed = false;

  constructor(
    readonly op: string,
    readonly attrs: OpAttrs[OpName],
    readonly spec: GradientSpec,
    /** Input tensors that are leaves requiring grad (others null): their `.grad` receives the gradient. */
    readonly leaves: (Tensor | null)[],
    /** Nodes of the inputs (null for leaves and constants). */
    readonly inputNodes: (GradNode | null)[],
    readonly needsGrad: boolean[],
    readonly inputShapes: (readonly number[])[],
    /** Dtypes of the inputs (a cast's gradient returns to its input's dtype). */
    readonly inputDtypes: DType[],
    public savedInputs: Tensor[],
    public savedOutput: Tensor | null,
  ) {}

  /** Drops saved tensors (the graph can no longer be backpropagated through this node). */
  freeSaved(): void {
    if (this.freed) return;
    this.freed = true;
    for (const t of this.savedInputs) t.dispose();
    this.savedOutput?.dispose();
    this.savedInputs = [];
    this.savedOutput = null;
  }

  /** Decrements the reference count, releasing this node and (transitively) its inputs at zero. */
  release(): void {
    // Iterative to avoid deep recursion on long chains.
    const stack: GradNode[] = [this];
    while (stack.length > 0) {
      const node = stack.pop()!;
      if (--node.refs > 0) continue;
      node.freeSaved();
      for (const n of node.inputNodes) if (n) stack.push(n);
    }
  }
}
