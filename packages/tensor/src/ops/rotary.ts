/**
 * Rotary position embedding on attention heads as one fused op per direction
 * (`Rope` forward, `RopeGrad` backward), in the `rotate_half` convention of
 * transformers' LLaMA: `y = x * cos + rotate_half(x) * sin`, `rotate_half(x1, x2) =
 * (-x2, x1)` over the two halves of each head. The op also moves the head axis in
 * front of the tokens (`[B, T, H, Dh] -> [B, H, T, Dh]`), so the projection output is
 * read once and the head split's copy disappears. Position offsets (KV cache, prefix)
 * live in the tables: they are built for the positions of the new tokens.
 */
import { ShapeError, fmtShape } from '../errors.js';
import { engine } from '../engine.js';
import { registerComposite, registerGradient } from '../registry.js';
import type { Tensor } from '../tensor.js';
import { add, mul, neg } from './elementwise.js';
import { checkSameFloat } from './float-check.js';
import { concat, permute, slice, unsqueeze } from './layout.js';

declare module '../op-names.js' {
  interface FusedOpAttrs {
    /** `x [B, T, H, Dh]`, `cos`, `sin` `[T, Dh]` or `[B, T, Dh]` -> `[B, H, T, Dh]`: RoPE with the head axis moved forward. */
    Rope: Record<string, never>;
    /** `dy [B, H, T, Dh]`, `cos`, `sin` -> `dx [B, T, H, Dh]`: the input gradient of `Rope`. */
    RopeGrad: Record<string, never>;
  }
}

/**
 * Checks the tables of a RoPE call against heads `[B, T, H, Dh]` (`what` names the caller).
 * Tables are `[T, Dh]` (the same positions in every row) or `[B, T, Dh]` (per-row positions).
 */
export function checkRopeTables(what: string, b: number, t: number, dh: number, cosT: Tensor, sinT: Tensor): void {
  for (const [name, tab] of [['cos', cosT], ['sin', sinT]] as const) {
    const ok = (tab.rank === 2 && tab.shape[0] === t && tab.shape[1] === dh) || (tab.rank === 3 && tab.shape[0] === b && tab.shape[1] === t && tab.shape[2] === dh);
    if (!ok) throw new ShapeError(`${what}: ${name} ${fmtShape(tab.shape)} must be [${t}, ${dh}] or [${b}, ${t}, ${dh}]`);
  }
  if (cosT.rank !== sinT.rank) throw new ShapeError(`${what}: cos ${fmtShape(cosT.shape)} and sin ${fmtShape(sinT.shape)} must have one shape`);
}

/**
 * RoPE on heads with the head axis moved in front of the tokens:
 * `x [B, T, H, Dh]` (a projection output reshaped, `H` query or key/value heads) and
 * tables `cos`, `sin` `[T, Dh]` or `[B, T, Dh]` of x's dtype (angles `pos * inv_freq`,
 * each repeated for both halves, as `RotaryEmbedding.cosSin` builds them) ->
 * `[B, H, T, Dh]` equal to `permute(x, [0, 2, 1, 3]) * cos + rotate_half(...) * sin`.
 * One kernel forward and one backward (gradient to `x` only: tables that require grad
 * are refused).
 * @example
 * const q = ropeHeads(reshape(qProj, [b, t, nHeads, headDim]), cos, sin); // [b, nHeads, t, headDim]
 */
export function ropeHeads(x: Tensor, cosT: Tensor, sinT: Tensor): Tensor {
  x.liveStorage('ropeHeads');
  checkSameFloat('ropeHeads', x, cosT, sinT);
  if (x.rank !== 4) throw new ShapeError(`ropeHeads: x ${fmtShape(x.shape)} must be [B, T, H, Dh]`);
  const [b, t, , dh] = x.shape;
  if (dh % 2 !== 0) throw new ShapeError(`ropeHeads: head dim ${dh} of x ${fmtShape(x.shape)} must be even`);
  checkRopeTables('ropeHeads', b, t, dh, cosT, sinT);
  if (engine.gradEnabled && (cosT.requiresGrad || sinT.requiresGrad)) {
    throw new Error(`ropeHeads: cos ${fmtShape(cosT.shape)} / sin ${fmtShape(sinT.shape)} require grad; RoPE tables are constants here (detach them)`);
  }
  return engine.runOp('Rope', [x, cosT, sinT], {});
}

// ---- composite definitions (primitives only) -------------------------------------

/** Tables `[T, Dh]` or `[B, T, Dh]` made broadcastable to `[B, T, H, Dh]`. */
function tableOverHeads(tab: Tensor): Tensor {
  return unsqueeze(tab, -2);
}

/** `rotate_half(z)` over the last axis: `(z1, z2) -> (-z2, z1)`. */
function rotateHalf(z: Tensor): Tensor {
  const h = z.shape[z.rank - 1] / 2;
  const lead = z.shape.slice(0, -1).map(() => 0);
  const z1 = slice(z, [...lead, 0], [...z.shape.slice(0, -1), h]);
  const z2 = slice(z, [...lead, h], [...z.shape.slice(0, -1), h]);
  return concat([neg(z2), z1], -1);
}

/** `rotate_half^T(z)`: `(z1, z2) -> (z2, -z1)` (the adjoint, for the gradient). */
function rotateHalfT(z: Tensor): Tensor {
  const h = z.shape[z.rank - 1] / 2;
  const lead = z.shape.slice(0, -1).map(() => 0);
  const z1 = slice(z, [...lead, 0], [...z.shape.slice(0, -1), h]);
  const z2 = slice(z, [...lead, h], [...z.shape.slice(0, -1), h]);
  return concat([z2, neg(z1)], -1);
}

/** Registers the composites and the gradient of `Rope`. */
export function registerRopeOps(): void {
  // inputs [x [B, T, H, Dh], cos, sin]
  registerComposite('Rope', ([x, c, s]) => {
    const cb = tableOverHeads(c);
    const sb = tableOverHeads(s);
    return permute(add(mul(x, cb), mul(rotateHalf(x), sb)), [0, 2, 1, 3]);
  });
  // inputs [dy [B, H, T, Dh], cos, sin]: dx = dy' cos + rotate_half^T(dy' sin), dy' = dy [B, T, H, Dh]
  registerComposite('RopeGrad', ([dy, c, s]) => {
    const d = permute(dy, [0, 2, 1, 3]);
    return add(mul(d, tableOverHeads(c)), rotateHalfT(mul(d, tableOverHeads(s))));
  });
  registerGradient('Rope', {
    saveInputs: true,
    saveOutput: false,
    // The tables never require grad (refused by `ropeHeads`), so only x gets one.
    grad: (dy, { inputs: [, c, s], needsGrad }) => [needsGrad[0] ? engine.runOp('RopeGrad', [dy, c, s], {}) : null, null, null],
  });
}
