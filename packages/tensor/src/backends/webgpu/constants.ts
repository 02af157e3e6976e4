/**
 * WebGPU flag values from the specification. Dawn in Node does not define the
 * `GPUBufferUsage` / `GPUMapMode` globals, so the runtime uses these numbers.
 */
export const BufferUsage = {
  MAP_READ: 0x0001,
  MAP_WRITE: 0x0002,
  COPY_SRC: 0x0004,
  COPY_DST: 0x0008,
  UNIFORM: 0x0040,
  STORAGE: 0x0080,
} as const;

export const MapMode = { READ: 0x0001, WRITE: 0x0002 } as const;

export const ShaderStage = { COMPUTE: 0x4 } as const;

/** Uniform data of one dispatch is padded to this many bytes (the WebGPU minimum offset alignment). */
export const UNIFORM_SLOT_BYTES = 256;

/** Most workgroups per dispatch dimension (WebGPU default limit). */
export const MAX_WORKGROUPS_PER_DIM = 65535;
