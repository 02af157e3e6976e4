/** The browser's WebGPU: `navigator.gpu`. */

/** The page's `GPU` object, or an error when the browser has no WebGPU. */
export async function getGpu(): Promise<GPU> {
  const gpu = (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
  if (!gpu) throw new Error('navigator.gpu is undefined: this browser has no WebGPU (Chromium needs --enable-unsafe-webgpu on Linux)');
  return gpu;
}

/** Hint appended to "no adapter" errors. */
export const NO_ADAPTER_HINT = 'The browser exposes navigator.gpu but returned no adapter (headless Chromium needs --enable-unsafe-webgpu and a Vulkan driver such as SwiftShader).';
