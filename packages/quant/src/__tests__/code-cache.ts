import { type BackendName, tensor } from '@webpeft/tensor';
import { AdamW8bit, DYNAMIC_SIGNED, DYNAMIC_UNSIGNED, FP4_CODE, NF4_CODE, codeTensor } from '../index.js';

/**
 * Uploads the code tables that quant keeps per backend for the life of the process: the
 * canonical tables (NF4, FP4, the dynamic maps, code-tensors.ts) and the 8-bit
 * optimizers' combined map on webgpu (made by their first step). A file's first test
 * that quantizes would otherwise count them as its own leak; call it in `beforeAll`.
 */
export async function uploadCodeTables(backends: readonly BackendName[]): Promise<void> {
  for (const backend of backends) {
    for (const table of [NF4_CODE, FP4_CODE, DYNAMIC_SIGNED, DYNAMIC_UNSIGNED]) codeTensor(table, backend);
    // One 8-bit step (min8bitSize elements, the smallest with 8-bit states) on every backend.
    const p = tensor(new Float32Array(4096).fill(0.5), [4096], { backend, requiresGrad: true });
    p.grad = tensor(new Float32Array(4096).fill(0.25), [4096], { backend });
    const opt = new AdamW8bit([p]);
    await opt.step();
    opt.disposeState();
    p.dispose();
  }
}
