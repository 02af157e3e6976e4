/**
 * The webgpu kernel of `PagedUpdate`: an `@webpeft/optim` update rule's WGSL body (the
 * same statements as its fused kernel, so results are bit-identical to the unpaged
 * optimizer) over one page, with the parameter and gradient bound whole and the page's
 * states in one slot (`st[j * count + i]`).
 */
import { Uniforms, elementMain, grid, program, registerInPlaceKernel, storageBindings } from '@webpeft/tensor/kernel';
import type {} from './optim-ops.js';

const WG = 256;

/** Registers the webgpu kernel of `PagedUpdate`. */
export function registerPagedWebGpuKernel(): void {
  registerInPlaceKernel('PagedUpdate', 'webgpu', ({ rule, hyper, scalars, param, grad, slot, base, count }, ctx) => {
    const names = rule.stateNames(hyper);
    const { variant, body } = rule.wgsl(hyper);
    const u = new Uniforms().u32('size', count).u32('base', base);
    for (const [n, v] of Object.entries(scalars)) u.f32(n, v);
    const prog = program(`quant/paged/${rule.name}/${variant}`, 1, 2, () => `
${storageBindings([['gs', 'f32']], [['ps', 'f32'], ['st', 'f32']])}
${u.declaration(3)}
${elementMain(WG, 'u.size')}
  let g = gs[u.base + i];
  var p = ps[u.base + i];
${names.map((n, j) => `  var ${n} = st[${j}u * u.size + i];`).join('\n')}
${body}
  ps[u.base + i] = p;
${names.map((n, j) => `  st[${j}u * u.size + i] = ${n};`).join('\n')}
}`);
    ctx.dispatch(prog, [grad], [param, slot], u, grid(count, WG));
  });
}
