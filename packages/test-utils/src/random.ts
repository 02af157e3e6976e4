/**
 * A small seeded generator (mulberry32) for test inputs, independent of the runtime's
 * Philox code so that tests never use the code under test to make their inputs.
 */
export class SeededRandom {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** Standard normal (Box-Muller). */
  normal(): number {
    const u1 = 1 - this.next();
    const u2 = this.next();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }
}

/** `n` uniform values in [lo, hi) as a Float32Array (or Float64Array with `f64`). */
export function randomArray(n: number, seed: number, lo = -1, hi = 1, f64 = false): Float32Array | Float64Array {
  const r = new SeededRandom(seed);
  const out = f64 ? new Float64Array(n) : new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = r.uniform(lo, hi);
  return out;
}

/** `n` integers in [0, max) as an Int32Array. */
export function randomInts(n: number, max: number, seed: number): Int32Array {
  const r = new SeededRandom(seed);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.floor(r.next() * max);
  return out;
}
