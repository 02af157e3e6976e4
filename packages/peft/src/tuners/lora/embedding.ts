import type { Embedding } from '@webpeft/nn';
import { type Tensor, add, assign, gather, matmul, mul, noGrad, randn, sub, tidy, transpose, zeros } from '@webpeft/tensor';
import { backendOf } from '../backend-of.js';
import { type NewAdapter, TunerLayer } from '../tuner-layer.js';
import { type ResolvedLoraConfig, isBaseRewritingInit, loraScaling } from './config.js';
import { type LoraLayerOptions, loraLayerOptions } from './linear.js';
import { BASE_ADAPTER, type MixedBatchLayer, checkMixedBatch, placeRows, rowIndex, rowsByAdapter, takeRows } from '../mixed-batch.js';

/** The tensors a {@link LoraEmbedding} declares per adapter. */
export type LoraEmbeddingSlot = 'lora_embedding_A' | 'lora_embedding_B';

/**
 * LoRA around an `Embedding [numEmbeddings, dim]`, stored as PEFT does:
 * `lora_embedding_A.<name> [r, numEmbeddings]` (init 0) and
 * `lora_embedding_B.<name> [dim, r]` (init N(0, 1)):
 * `y = E[ids] + scaling * A^T[ids] B^T`, ids `[...] -> [..., dim]`. No dropout (ids are not features).
 */
export class LoraEmbedding extends TunerLayer<ResolvedLoraConfig, LoraEmbeddingSlot, Embedding, { scaling: number }> implements MixedBatchLayer {
  readonly peftType = 'LORA';
  /** Per-sample adapter names of a mixed-adapter batch (set by `PeftModel`), or null. */
  mixedAdapterNames: readonly string[] | null = null;

  constructor(base: Embedding) {
    super(base, { lora_embedding_A: 'parameter', lora_embedding_B: 'parameter' });
  }

  /** The wrapped embedding. */
  get base(): Embedding {
    return this.base_layer;
  }

  /** The base table `[numEmbeddings, dim]`, for model code that reads it through the wrapper (its dtype). */
  get weight(): Tensor {
    return this.base.weight;
  }

  /** `lora_embedding_A [r, numEmbeddings]`, `lora_embedding_B [dim, r]` and the scaling of adapter `name`. */
  weights(name: string): { A: Tensor; B: Tensor; scaling: number } {
    return { A: this.adapterTensor(name, 'lora_embedding_A'), B: this.adapterTensor(name, 'lora_embedding_B'), scaling: this.adapterSettings(name).scaling };
  }

  protected initAdapter(_name: string, config: ResolvedLoraConfig, path: string): NewAdapter<LoraEmbeddingSlot, { scaling: number }> {
    return this.newAdapter(loraLayerOptions(config, path));
  }

  /** Adds adapter `name` with explicit per-layer options. */
  addAdapterWith(name: string, o: LoraLayerOptions): void {
    this.addAdapterTensors(name, tidy(() => this.newAdapter(o)));
  }

  private newAdapter(o: LoraLayerOptions): NewAdapter<LoraEmbeddingSlot, { scaling: number }> {
    if (o.useDora) throw new Error('LoraEmbedding: DoRA on embedding layers is not supported');
    if (isBaseRewritingInit(o.initLoraWeights)) throw new Error(`LoraEmbedding: initLoraWeights '${o.initLoraWeights}' on embedding layers is not supported (target linear layers only)`);
    const backend = backendOf(this.base);
    const { numEmbeddings, embeddingDim } = this.base;
    // PEFT: A = 0, B ~ N(0, 1) for the default and gaussian inits; both random with init false.
    const A = o.initLoraWeights === false ? randn([o.r, numEmbeddings], { backend }) : zeros([o.r, numEmbeddings], { backend });
    const B = randn([embeddingDim, o.r], { backend });
    return { tensors: { lora_embedding_A: A, lora_embedding_B: B }, settings: { scaling: loraScaling(o.loraAlpha, o.r, o.useRslora) } };
  }

  forward(ids: Tensor): Tensor {
    const names = this.mixedAdapterNames;
    if (names) checkMixedBatch(this.constructor.name, ids, names, this);
    this.unmergeForForward();
    if (names && !this.disabled) return this.mixedBatchForward(ids, names);
    return tidy(() => {
      let y = this.base.forward(ids);
      if (this.merged) return y;
      for (const name of this.effectiveAdapters()) {
        const { A, B, scaling } = this.weights(name);
        y = add(y, matmul(mul(gather(transpose(A), ids), scaling), B, { transposeB: true }));
      }
      return y;
    });
  }

  /**
   * PEFT's `_mixed_batch_forward` for embeddings: the base lookup for the whole batch
   * `ids [B, ...]`, then each named adapter's term on its rows only, added into them.
   */
  private mixedBatchForward(ids: Tensor, names: readonly string[]): Tensor {
    return tidy(() => {
      let y = this.base.forward(ids);
      for (const [name, rows] of rowsByAdapter(names)) {
        if (name === BASE_ADAPTER || !this.hasAdapter(name)) continue;
        const { A, B, scaling } = this.weights(name);
        const idx = rowIndex(rows, ids);
        // The rows' A^T[ids] `[k, ..., r]`: looked up for the batch, then its rows taken (ids stay i32).
        const after = takeRows(gather(transpose(A), ids), idx);
        y = add(y, placeRows(mul(matmul(after, B, { transposeB: true }), scaling), idx, ids.shape[0]));
      }
      return y;
    });
  }

  /** `scaling * (B A)^T`, `[numEmbeddings, dim]` (a new tensor). */
  deltaWeight(name: string): Tensor {
    const { A, B, scaling } = this.weights(name);
    return noGrad(() => tidy(() => mul(matmul(A, B, { transposeA: true, transposeB: true }), scaling)));
  }

  override merge(adapterNames: string[] = this.activeAdapters): void {
    for (const name of adapterNames) {
      if (this.mergedAdapters.includes(name)) continue;
      this.apply(name, add);
      this.mergedAdapters.push(name);
    }
  }

  override unmerge(): void {
    while (this.mergedAdapters.length > 0) this.apply(this.mergedAdapters.pop() as string, sub);
  }

  private apply(name: string, op: (a: Tensor, b: Tensor) => Tensor): void {
    noGrad(() => tidy(() => assign(this.base.weight, op(this.base.weight, this.deltaWeight(name)))));
  }
}
