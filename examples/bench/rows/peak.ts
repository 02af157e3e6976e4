import { type WebGpuBackend, Uniforms, _engine, getBackend, program, runKernel, sync } from '@webpeft/tensor';
import { registerRow } from '../table.ts';
import { medianMs } from '../timing.ts';

const WORKGROUPS = 256;
const WG = 64;
const ITERS = 512;
/** Independent FMA chains per thread (enough to hide FMA latency). */
const CHAINS = 8;

/**
 * The adapter's measured f32 peak: a kernel of independent `vec4` FMA chains with no
 * memory traffic (a reference for the matmul rows, not a comparison with tfjs).
 */
registerRow({
  group: 'peak',
  name: `FMA throughput (${WORKGROUPS * WG} threads x ${ITERS} x ${CHAINS} vec4 FMA)`,
  async run(ctx) {
    const backend = getBackend('webgpu') as WebGpuBackend;
    const chains = Array.from({ length: CHAINS }, (_, i) => i);
    const u = new Uniforms().u32('iters', ITERS);
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
    const out = _engine.makeTensor(backend, [WORKGROUPS * WG], 'f32', 'bench-peak');
    const oursMs = await medianMs(async () => {
      runKernel(backend, prog, [], [out], u, [WORKGROUPS, 1, 1]);
      await sync();
    }, ctx.runs);
    out.dispose();
    return { oursMs, flops: WORKGROUPS * WG * ITERS * CHAINS * 4 * 2, note: 'peak reference' };
  },
});
