import { type Tensor, gather } from '@webpeft/tensor';
import { type ParamOptions, normalInit } from '../init.js';
import { Module } from '../module.js';

/**
 * Lookup table `weight [numEmbeddings, dim]`: i32 ids `[...] -> [..., dim]`.
 * Init N(0, std) (PyTorch uses std 1; HF GPT-2/LLaMA use 0.02, pass `initStd`).
 */
export class Embedding extends Module {
  readonly weight: Tensor;

  constructor(
    readonly numEmbeddings: number,
    readonly embeddingDim: number,
    options: ParamOptions & { initStd?: number } = {},
  ) {
    super();
    this.weight = this.registerParameter('weight', normalInit([numEmbeddings, embeddingDim], options.initStd ?? 1, options));
  }

  forward(ids: Tensor): Tensor {
    return gather(this.weight, ids);
  }
}
