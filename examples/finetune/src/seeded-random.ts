/** mulberry32: a tiny seeded generator for picking training windows reproducibly. */
export class SeededRandom {
  private state_: number;

  constructor(seed: number) {
    this.state_ = seed >>> 0;
  }

  /** The generator's whole state (an unsigned 32-bit integer), e.g. to save with a checkpoint. */
  get state(): number {
    return this.state_;
  }

  /** Restores a state read from {@link state}; throws naming the value unless it is an integer in [0, 2^32). */
  set state(value: number) {
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new RangeError(`SeededRandom: state must be an integer in [0, 2^32), got ${value}`);
    this.state_ = value;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state_ = (this.state_ + 0x6d2b79f5) >>> 0;
    let t = this.state_;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}
