/**
 * Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11).
 *
 * A counter-based generator: the bits of element `i` are a pure function of
 * (seed, offset, i), so every backend and runtime produces the same bits without
 * sharing state. The WGSL version in `backends/webgpu/wgsl/philox.ts` follows this
 * file line by line.
 *
 * Layout: block `b = offset + floor(i / 4)` is the 64-bit counter (low word, high word,
 * 0, 0); the key is the 64-bit seed (low word, high word); element `i` takes word
 * `i % 4` of its block.
 */

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

/** High 32 bits of the 64-bit product of two u32 (exact, via 16-bit halves). */
export function mulhi32(a: number, b: number): number {
  const aLo = a & 0xffff;
  const aHi = a >>> 16;
  const bLo = b & 0xffff;
  const bHi = b >>> 16;
  const lolo = aLo * bLo;
  const lohi = aLo * bHi;
  const hilo = aHi * bLo;
  const hihi = aHi * bHi;
  const mid = (lolo >>> 16) + (lohi & 0xffff) + (hilo & 0xffff);
  return (hihi + (lohi >>> 16) + (hilo >>> 16) + (mid >>> 16)) >>> 0;
}

/**
 * Writes the four output words of counter block (c0, c1, c2, c3) under key (k0, k1)
 * into `out`. The runtime's streams use (c0, c1, 0, 0); the upper counter words exist
 * so that the function can be checked against the Random123 known-answer vectors.
 */
export function philoxBlock(c0: number, c1: number, k0: number, k1: number, out: Uint32Array, c2 = 0, c3 = 0): void {
  let x0 = c0 >>> 0;
  let x1 = c1 >>> 0;
  let x2 = c2 >>> 0;
  let x3 = c3 >>> 0;
  let key0 = k0 >>> 0;
  let key1 = k1 >>> 0;
  for (let r = 0; r < 10; r++) {
    const hi0 = mulhi32(M0, x0);
    const lo0 = Math.imul(M0, x0) >>> 0;
    const hi1 = mulhi32(M1, x2);
    const lo1 = Math.imul(M1, x2) >>> 0;
    const n0 = (hi1 ^ x1 ^ key0) >>> 0;
    const n2 = (hi0 ^ x3 ^ key1) >>> 0;
    x0 = n0;
    x1 = lo1;
    x2 = n2;
    x3 = lo0;
    key0 = (key0 + W0) >>> 0;
    key1 = (key1 + W1) >>> 0;
  }
  out[0] = x0;
  out[1] = x1;
  out[2] = x2;
  out[3] = x3;
}

/** Splits a non-negative integer below 2^53 into (low, high) 32-bit words. */
export function splitU64(v: number): [number, number] {
  return [v % 0x100000000 >>> 0, Math.floor(v / 0x100000000) >>> 0];
}

/** `count` raw 32-bit words for elements 0..count-1 of stream (seed, offset). */
export function philoxWords(seed: number, offset: number, count: number): Uint32Array {
  const [k0, k1] = splitU64(seed);
  const out = new Uint32Array(count);
  const block = new Uint32Array(4);
  for (let b = 0; b * 4 < count; b++) {
    const [c0, c1] = splitU64(offset + b);
    philoxBlock(c0, c1, k0, k1, block);
    for (let j = 0; j < 4 && b * 4 + j < count; j++) out[b * 4 + j] = block[j];
  }
  return out;
}

/** Uniform in [0, 1) with 24 random bits, exactly representable in f32. */
export function wordToUniform(word: number): number {
  return (word >>> 8) * 5.960464477539063e-8; // 2^-24
}

/** Number of Philox blocks (counter values) a stream of `count` words consumes. */
export function blocksFor(count: number): number {
  return Math.ceil(count / 4);
}

/**
 * Standard normal samples by Box-Muller: element `i` uses words `2i` and `2i+1` of the
 * stream; `u1` is shifted into (0, 1] so its log is finite.
 */
export function philoxNormal(seed: number, offset: number, count: number): Float64Array {
  const words = philoxWords(seed, offset, 2 * count);
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    const u1 = ((words[2 * i] >>> 8) + 1) * 5.960464477539063e-8;
    const u2 = wordToUniform(words[2 * i + 1]);
    out[i] = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }
  return out;
}

/** Integer threshold on the 24-bit uniform: keep an element when `(word >>> 8) >= threshold`. */
export function dropoutThreshold(p: number): number {
  return Math.ceil(p * 16777216);
}
