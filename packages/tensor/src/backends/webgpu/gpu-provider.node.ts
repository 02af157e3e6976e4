/**
 * Node's WebGPU: Dawn through the `webgpu` package. The object returned by `create()`
 * must stay strongly referenced for the life of the process (if it is collected, Dawn
 * crashes), hence the module-level variable.
 */
import { create } from 'webgpu';

let gpu: GPU | undefined;

/** The process-wide `GPU` object. */
export async function getGpu(): Promise<GPU> {
  gpu ??= create([]);
  return gpu;
}

/** Hint appended to "no adapter" errors. */
export const NO_ADAPTER_HINT =
  'Dawn found no Vulkan driver. On a machine without a GPU install Mesa >= 25 lavapipe (Debian: mesa-vulkan-drivers from bookworm-backports) or point VK_ICD_FILENAMES at SwiftShader.';
