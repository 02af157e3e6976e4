import { AdamW8bit, DYNAMIC_SIGNED, DYNAMIC_UNSIGNED, FP4_CODE, NF4_CODE, codeTensor } from '@webpeft/quant';
import { type BackendName, tensor } from '@webpeft/tensor';

/**
 * Uploads the code tables that quant keeps per backend for the life of the process (the
 * canonical 4-bit and dynamic maps, and the 8-bit optimizers' combined map made by
 * their first step), so the first test of a file that uses an 8-bit optimizer does not
 * count them as its own leak. Call it in `beforeAll`.
 */
export async function uploadCodeTables(backends: readonly BackendName[]): Promise<void> {
  for (const backend of backends) {
    for (const table of [NF4_CODE, FP4_CODE, DYNAMIC_SIGNED, DYNAMIC_UNSIGNED]) codeTensor(table, backend);
    // One 8-bit step (min8bitSize elements, the smallest with 8-bit states).
    const p = tensor(new Float32Array(4096).fill(0.5), [4096], { backend, requiresGrad: true });
    p.grad = tensor(new Float32Array(4096).fill(0.25), [4096], { backend });
    const opt = new AdamW8bit([p]);
    await opt.step();
    opt.disposeState();
    p.dispose();
  }
}
