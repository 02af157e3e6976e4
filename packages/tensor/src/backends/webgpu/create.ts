import { NoAdapterError } from '../../errors.js';
import { NO_ADAPTER_HINT, getGpu } from '#gpu-provider';
import { registerWebGpuKernels } from './register.js';
import { WebGpuBackend, type WebGpuBackendOptions } from './webgpu-backend.js';

/** Options for creating the WebGPU backend. */
export interface WebGpuInitOptions extends WebGpuBackendOptions {
  powerPreference?: GPUPowerPreference;
}

/** Optional features requested when the adapter has them. */
const WANTED_FEATURES = ['shader-f16', 'subgroups', 'timestamp-query'] as const;

/**
 * Requests an adapter and a device with the adapter's highest buffer limits (the
 * defaults cap storage bindings at 128 MiB) and the optional features it offers.
 */
export async function createWebGpuBackend(options: WebGpuInitOptions = {}): Promise<WebGpuBackend> {
  const gpu = await getGpu();
  const adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference ?? 'high-performance' });
  if (!adapter) throw new NoAdapterError(`webgpu: requestAdapter() returned null. ${NO_ADAPTER_HINT}`);
  const requiredFeatures = WANTED_FEATURES.filter((f) => adapter.features.has(f)) as GPUFeatureName[];
  const l = adapter.limits;
  const device = await adapter.requestDevice({
    requiredFeatures,
    requiredLimits: {
      maxBufferSize: l.maxBufferSize,
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
      maxComputeWorkgroupSizeY: l.maxComputeWorkgroupSizeY,
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
    },
  });
  registerWebGpuKernels();
  return new WebGpuBackend(device, adapter.info, options);
}
