/**
 * A compute kernel: WGSL with bindings `0..inputs-1` read-only storage, then `outputs`
 * read-write storage, then one uniform block (`var<uniform> u`) with a dynamic offset.
 */
export interface KernelProgram {
  /** Pipeline cache key: kernel name + shape class (rank, dtypes, flags), never exact sizes. */
  readonly key: string;
  readonly inputs: number;
  readonly outputs: number;
  /** Builds the WGSL source; called only on a cache miss. */
  source(): string;
  /**
   * True when the kernel reports bad indices: binding `inputs + outputs + 1` is then the
   * backend's error buffer (declare it with `indexCheckWgsl`), and the uniforms carry the
   * slot (`Uniforms.indexSlot`).
   */
  readonly indexChecks?: boolean;
}

/** Options of {@link program}. */
export interface ProgramOptions {
  /** The kernel reports bad indices (see {@link KernelProgram.indexChecks}). */
  indexChecks?: boolean;
}

/**
 * A program descriptor from a cache key, binding counts and a lazily built source.
 * The key must name everything the source depends on except sizes (which travel in
 * uniforms): the same key must always produce the same WGSL.
 * @example
 * const prog = program(`my/scale/${dtype}`, 1, 1, () => `...WGSL...`);
 */
export function program(key: string, inputs: number, outputs: number, source: () => string, options: ProgramOptions = {}): KernelProgram {
  return { key, inputs, outputs, source, indexChecks: options.indexChecks ?? false };
}
