import { fmtShape } from '../errors.js';
import type { Tensor } from '../tensor.js';

/**
 * Watches the ops of a `checkpoint()`ed function's first forward (which records
 * nothing): whether any op reads a tensor that requires grad (then the output needs a
 * node on the tape), and that every such tensor with a graph of its own is one of the
 * checkpoint's inputs. A tensor captured from outside would otherwise be cut from the
 * graph: its gradient could not flow back through the checkpoint.
 */
export class CheckpointProbe {
  sawGrad: boolean;

  constructor(
    private readonly inputs: ReadonlySet<Tensor>,
    private readonly name: string,
  ) {
    this.sawGrad = [...inputs].some((t) => t.requiresGrad);
  }

  /** Called before `op` runs on `inputs` inside the checkpointed function. */
  see(op: string, inputs: readonly Tensor[]): void {
    for (const t of inputs) {
      if (!t.requiresGrad) continue;
      this.sawGrad = true;
      if (t.node && !this.inputs.has(t)) {
        throw new Error(
          `${this.name}: ${op} inside the checkpointed function reads tensor #${t.id} ${fmtShape(t.shape)} ${t.dtype}, which requires grad and was computed outside it; pass it in the checkpoint's inputs so that its gradient flows`,
        );
      }
    }
  }
}
