import type { BackendName } from '@webpeft/tensor';
import { DYNAMIC_SIGNED, DYNAMIC_UNSIGNED, FP4_CODE, NF4_CODE, codeTensor } from '../index.js';

/**
 * Uploads the canonical code tables (NF4, FP4, the dynamic maps) on `backends`. They are
 * shared per backend for the life of the process (code-tensors.ts), so a file's first
 * test that quantizes would otherwise count them as its own leak; call it in `beforeAll`.
 */
export function uploadCodeTables(backends: readonly BackendName[]): void {
  for (const backend of backends) for (const table of [NF4_CODE, FP4_CODE, DYNAMIC_SIGNED, DYNAMIC_UNSIGNED]) codeTensor(table, backend);
}
