/**
 * What kernel choices need to know of a WebGPU adapter beyond its limits and features,
 * worked out once when the backend is created (kernels read it on every dispatch).
 */

/** The adapter's class, as kernels choose variants by it. */
export interface AdapterKind {
  /**
   * A CPU implementation of WebGPU (Mesa's lavapipe / llvmpipe, SwiftShader, a fallback
   * adapter): one shader invocation per SIMD lane, per-lane loads are gathers and
   * barriers are expensive, so register-tiled and lane-per-output kernels win there.
   */
  readonly software: boolean;
  /** SwiftShader (Chromium's software adapter): its shader compiler takes minutes on large unrolled kernels. */
  readonly swiftShader: boolean;
}

/** Classifies an adapter from its `GPUAdapterInfo` (vendor, architecture, device, description). */
export function classifyAdapter(info: GPUAdapterInfo): AdapterKind {
  const i = info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  const text = `${i.vendor} ${i.architecture} ${i.device} ${i.description}`;
  const swiftShader = /swiftshader/i.test(text);
  const software = i.isFallbackAdapter === true || i.architecture === 'software' || swiftShader || /llvmpipe|lavapipe/i.test(`${i.device} ${i.description}`);
  return { software, swiftShader };
}
