/**
 * bitsandbytes' 8-bit blockwise Adam step on host arrays (the cpu backend and the
 * readable statement of the algorithm the WGSL kernel repeats), following
 * `kOptimizerStatic8bit2StateBlockwise` (csrc/kernels.cu) with blocks of 256:
 *
 * 1. dequantize both states of a block: `s = code[q] * absmax[block]`;
 * 2. fp32 Adam: `s2 = s2*b2 + ((1-b2)*g)*g`, `s1 = s1*b1 + (1-b1)*g`;
 * 3. new per-block absmax of each state (lanes past the end of a partial last block
 *    take the kernel's load defaults: g = 0, state1 code 128, state2 code 0);
 * 4. `p = p + stepSize * (s1 / (sqrt(s2) + c2*eps))`, then `p *= 1 - lr*wd` if wd > 0;
 * 5. requantize `s / absmax` to the nearest code (`quantize_2D`), the first moment
 *    keeping its sign (a code of the wrong sign moves one step toward it).
 *
 * Every operation is rounded to float32 separately (no fused multiply-add), and
 * `__fdividef` is taken as the correctly rounded division.
 */
import type { BnbAdamScalars } from './bnb-scalars.js';

const f = Math.fround;

/** Elements per quantization block of the 8-bit optimizer states. */
export const OPTIM_BLOCK = 256;
/** u32 words of one block's state: 2 x 64 words of codes plus the two absmax values. */
export const WORDS_PER_BLOCK = 130;

/**
 * Views of one parameter's packed 8-bit state (`[codes1 | codes2 | absmax1 | absmax2]`,
 * `nb * 64` words of codes each, then `nb` float32 each).
 */
export interface State8bitViews {
  codes1: Uint8Array;
  codes2: Uint8Array;
  absmax1: Float32Array;
  absmax2: Float32Array;
}

/** Views into the packed state words of a parameter with `blocks` blocks. */
export function stateViews(words: Uint32Array, blocks: number): State8bitViews {
  const buf = words.buffer;
  const o = words.byteOffset;
  return {
    codes1: new Uint8Array(buf, o, blocks * OPTIM_BLOCK),
    codes2: new Uint8Array(buf, o + blocks * OPTIM_BLOCK, blocks * OPTIM_BLOCK),
    absmax1: new Float32Array(buf, o + blocks * 2 * OPTIM_BLOCK, blocks),
    absmax2: new Float32Array(buf, o + blocks * 2 * OPTIM_BLOCK + blocks * 4, blocks),
  };
}

/**
 * bitsandbytes `quantize_2D<SIGNED>`: binary search over the sorted 256-entry `code`
 * for the nearest entry of `x` (on the upward branch a tie keeps the lower code, on the
 * downward branch the upper one; NaN gets code 0).
 */
export function quantize2D(code: Float32Array, x: number, signed: boolean): number {
  let pivot = 127;
  let upperPivot = 255;
  let lowerPivot = 0;
  let lower = signed ? -1 : 0;
  let upper = 1;
  let val = code[pivot];
  for (let i = 64; i > 0; i >>= 1) {
    if (x > val) {
      lowerPivot = pivot;
      lower = val;
      pivot += i;
    } else {
      upperPivot = pivot;
      upper = val;
      pivot -= i;
    }
    val = code[pivot];
  }
  if (x > val) return x > f(f(upper + val) * 0.5) ? upperPivot : pivot;
  return x < f(f(lower + val) * 0.5) ? lowerPivot : pivot;
}

/** IEEE sign bit (true for -0). */
function signbit(x: number): boolean {
  return x < 0 || Object.is(x, -0);
}

/**
 * One 8-bit blockwise Adam step of a parameter (float32 `p`, `g` of `n` elements; state
 * views of `ceil(n / 256)` blocks), in place. `code1` is the signed dynamic map,
 * `code2` the unsigned one.
 */
export function adam8bitBlockwiseHost(p: Float32Array, g: Float32Array, s: State8bitViews, code1: Float32Array, code2: Float32Array, k: BnbAdamScalars): void {
  const n = p.length;
  const blocks = Math.ceil(n / OPTIM_BLOCK);
  const s1 = new Float32Array(OPTIM_BLOCK);
  const s2 = new Float32Array(OPTIM_BLOCK);
  for (let b = 0; b < blocks; b++) {
    const base = b * OPTIM_BLOCK;
    const valid = Math.min(OPTIM_BLOCK, n - base);
    const a1 = s.absmax1[b];
    const a2 = s.absmax2[b];
    let max1 = -3.4028234663852886e38;
    let max2 = -3.4028234663852886e38;
    for (let j = 0; j < OPTIM_BLOCK; j++) {
      const live = j < valid;
      const gv = live ? g[base + j] : 0;
      let v1 = 0;
      let v2 = 0;
      if (Number.isFinite(gv)) {
        v2 = f(code2[live ? s.codes2[base + j] : 0] * a2);
        v2 = f(f(v2 * k.beta2) + f(f(k.oneMinusBeta2 * gv) * gv));
        v1 = f(code1[live ? s.codes1[base + j] : 128] * a1);
        v1 = f(f(v1 * k.beta1) + f(k.oneMinusBeta1 * gv));
      }
      s1[j] = v1;
      s2[j] = v2;
      max1 = Math.max(max1, Math.abs(v1));
      max2 = Math.max(max2, Math.abs(v2));
    }
    s.absmax1[b] = max1;
    s.absmax2[b] = max2;
    for (let j = 0; j < valid; j++) {
      const i = base + j;
      if (!Number.isFinite(g[i])) continue;
      let pv = f(p[i] + f(k.stepSize * f(s1[j] / f(f(Math.sqrt(s2[j])) + k.correctedEps))));
      if (k.hasDecay) pv = f(pv * k.decay);
      p[i] = pv;
    }
    for (let j = 0; j < OPTIM_BLOCK; j++) {
      let c1 = quantize2D(code1, f(s1[j] / max1), true);
      if (signbit(code1[c1]) !== signbit(s1[j])) c1 = (s1[j] > 0 ? c1 + 1 : c1 - 1) & 255;
      s.codes1[base + j] = c1;
      s.codes2[base + j] = quantize2D(code2, f(s2[j] / max2), false);
    }
  }
}

/**
 * bitsandbytes' 32-bit Adam step (`kOptimizer32bit2State`, ADAM), used for the fp32
 * states of small parameters of the 8-bit optimizers, in place:
 * `s1 = s1*b1 + (1-b1)*g`, `s2 = s2*b2 + (1-b2)*(g*g)`,
 * `p = p + stepSize * (s1 / (sqrt(s2) + eps*c2))`, then `p *= 1 - lr*wd` if wd > 0.
 */
export function adam32bitBnbHost(p: Float32Array | Float64Array, g: Float32Array | Float64Array, s1: Float32Array | Float64Array, s2: Float32Array | Float64Array, k: BnbAdamScalars): void {
  for (let i = 0; i < p.length; i++) {
    const gv = g[i];
    s1[i] = f(f(s1[i] * k.beta1) + f(k.oneMinusBeta1 * gv));
    s2[i] = f(f(s2[i] * k.beta2) + f(k.oneMinusBeta2 * f(gv * gv)));
    let pv = f(p[i] + f(k.stepSize * f(s1[i] / f(f(Math.sqrt(s2[i])) + k.correctedEps))));
    if (k.hasDecay) pv = f(pv * k.decay);
    p[i] = pv;
  }
}
