/**
 * The adapter classification kernels choose variants by: the strings real adapters
 * report (Dawn on Mesa lavapipe, Chromium's SwiftShader, hardware GPUs), and the running
 * backend's own kind, classified once and shared with its kernel context.
 */
import { getBackend } from '@webpeft/tensor';
import { type WebGpuKernelContext, classifyAdapter } from '@webpeft/tensor/kernel';
import { backendsUnderTest, initBackends } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await initBackends();
});

const info = (vendor: string, architecture: string, device: string, description: string, isFallbackAdapter?: boolean) =>
  ({ vendor, architecture, device, description, isFallbackAdapter }) as unknown as GPUAdapterInfo;

describe('classifyAdapter', () => {
  it.each([
    ['lavapipe (Dawn, Mesa 25)', info('mesa', 'software', '', 'llvmpipe (LLVM 15.0.6, 256 bits)'), { software: true, swiftShader: false }],
    ['lavapipe named in the device', info('mesa', '', 'lavapipe', ''), { software: true, swiftShader: false }],
    ['SwiftShader (Chromium)', info('google', 'swiftshader', '', 'SwiftShader Device (Subzero)'), { software: true, swiftShader: true }],
    ['a fallback adapter', info('', '', '', '', true), { software: true, swiftShader: false }],
    ['NVIDIA', info('nvidia', 'hopper', '', 'NVIDIA H200'), { software: false, swiftShader: false }],
    ['Apple', info('apple', 'metal-3', '', ''), { software: false, swiftShader: false }],
  ])('%s', (_name, adapter, kind) => {
    expect(classifyAdapter(adapter)).toEqual(kind);
  });

  it("is the running backend's adapter kind, on its kernel context too", () => {
    if (!backendsUnderTest().includes('webgpu')) return;
    const gpu = getBackend('webgpu') as unknown as { adapterInfo: GPUAdapterInfo; adapterKind: unknown; kernelContext: WebGpuKernelContext };
    expect(gpu.adapterKind).toEqual(classifyAdapter(gpu.adapterInfo));
    expect(gpu.kernelContext.adapterKind).toBe(gpu.adapterKind);
  });
});
