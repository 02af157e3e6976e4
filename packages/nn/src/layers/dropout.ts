import { type Tensor, dropout } from '@webpeft/tensor';
import { Module } from '../module.js';

/** Inverted dropout with probability `p`, active only in training mode. Shape unchanged. */
export class Dropout extends Module {
  constructor(readonly p = 0.1) {
    super();
    if (!(p >= 0 && p < 1)) throw new RangeError(`Dropout: p must be in [0, 1), got ${p}`);
  }

  forward(x: Tensor): Tensor {
    return dropout(x, this.p, this.training);
  }
}
