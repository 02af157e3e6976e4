import { getBackend, sync } from '@webpeft/tensor';
import { Uniforms, program, registerKernel, runOp } from '@webpeft/tensor/kernel';
import { registerRow } from '../table.ts';
import { medianMs } from '../timing.ts';

const WORKGROUPS = 256;
const WG = 64;
const ITERS = 512;
/** Independent FMA chains per thread (enough to hide FMA latency). */
const CHAINS = 8;

declare module '@webpeft/tensor/kernel' {
  interface OpAttrs {
    /** Bench only: `[workgroups * 64]` f32 from `iters` rounds of independent vec4 FMA chains per thread (no inputs, no memory traffic). */
    BenchFmaPeak: { workgroups: number; iters: number };
  }
}

registerKernel('BenchFmaPeak', 'webgpu', (_inputs, { workgroups, iters }, ctx) => {
  const chains = Array.from({ length: CHAINS }, (_, i) => i);
  const u = new Uniforms().u32('iters', iters);
  const prog = program(`bench/fma-peak/c${CHAINS}`, 0, 1, () => `@group(0) @binding(0) var<storage, read_write> out: array<f32>;
${u.declaration(1)}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let seed = vec4<f32>(f32(gid.x) * 1e-7);
  ${chains.map((i) => `var x${i} = seed + vec4<f32>(${i}.0 * 0.01);`).join('\n  ')}
  let m = vec4<f32>(0.9999);
  let c = vec4<f32>(0.0001);
  for (var i = 0u; i < u.iters; i++) {
    ${chains.map((i) => `x${i} = fma(x${i}, m, c);`).join('\n    ')}
  }
  out[gid.x] = dot(${chains.map((i) => `x${i}`).join(' + ')}, vec4<f32>(1.0));
}`);
  const out = ctx.output([workgroups * WG], 'f32', 'BenchFmaPeak');
  ctx.dispatch(prog, [], [out], u, [workgroups, 1, 1]);
  return out;
});

/**
 * The adapter's measured f32 peak: a kernel of independent `vec4` FMA chains with no
 * memory traffic (a reference for the matmul rows, not a comparison with tfjs).
 */
registerRow({
  group: 'peak',
  name: `FMA throughput (${WORKGROUPS * WG} threads x ${ITERS} x ${CHAINS} vec4 FMA)`,
  async run(ctx) {
    const backend = getBackend('webgpu');
    const oursMs = await medianMs(async () => {
      const out = runOp('BenchFmaPeak', [], { workgroups: WORKGROUPS, iters: ITERS }, backend);
      await sync();
      out.dispose();
    }, ctx.runs);
    return { oursMs, flops: WORKGROUPS * WG * ITERS * CHAINS * 4 * 2, note: 'peak reference' };
  },
});
