import { type Embedding } from '@webpeft/nn';
import { type Tensor, add, assign, gather, matmul, mul, noGrad, randn, sub, transpose, zeros } from '@webpeft/tensor';
import { backendOf } from '../backend-of.js';
import { ParameterDict } from '../containers.js';
import { TunerLayer } from '../tuner-layer.js';
import { type ResolvedLoraConfig, loraScaling } from './config.js';
import { type LoraLayerOptions, loraLayerOptions } from './linear.js';

interface EmbeddingAdapter {
  A: Tensor;
  B: Tensor;
  scaling: number;
}

/**
 * LoRA around an `Embedding [numEmbeddings, dim]`, stored as PEFT does:
 * `lora_embedding_A.<name> [r, numEmbeddings]` (init 0) and
 * `lora_embedding_B.<name> [dim, r]` (init N(0, 1)):
 * `y = E[ids] + scaling * A^T[ids] B^T`, ids `[...] -> [..., dim]`. No dropout (ids are not features).
 */
export class LoraEmbedding extends TunerLayer<ResolvedLoraConfig> {
  readonly peftType = 'LORA';
  private readonly adapters = new Map<string, EmbeddingAdapter>();

  constructor(base: Embedding) {
    super(base);
    this.registerModule('lora_embedding_A', new ParameterDict());
    this.registerModule('lora_embedding_B', new ParameterDict());
  }

  /** The wrapped embedding. */
  get base(): Embedding {
    return this.base_layer as Embedding;
  }

  private dict(name: 'lora_embedding_A' | 'lora_embedding_B'): ParameterDict {
    return (this as unknown as Record<string, ParameterDict>)[name];
  }

  adapterNames(): string[] {
    return [...this.adapters.keys()];
  }

  private get(name: string): EmbeddingAdapter {
    const a = this.adapters.get(name);
    if (!a) throw new Error(`LoraEmbedding: no adapter '${name}' (have: ${this.adapterNames().join(', ') || 'none'})`);
    return a;
  }

  /** `lora_embedding_A [r, numEmbeddings]`, `lora_embedding_B [dim, r]` and the scaling of adapter `name`. */
  weights(name: string): { A: Tensor; B: Tensor; scaling: number } {
    return { ...this.get(name) };
  }

  addAdapter(name: string, config: ResolvedLoraConfig, path: string): void {
    this.addAdapterWith(name, loraLayerOptions(config, path));
  }

  /** Adds adapter `name` with explicit per-layer options. */
  addAdapterWith(name: string, o: LoraLayerOptions): void {
    if (this.adapters.has(name)) throw new Error(`LoraEmbedding: adapter '${name}' already exists`);
    if (o.useDora) throw new Error('LoraEmbedding: DoRA on embedding layers is not supported');
    const backend = backendOf(this.base);
    const { numEmbeddings, embeddingDim } = this.base;
    // PEFT: A = 0, B ~ N(0, 1) for the default and gaussian inits; both random with init false.
    const A = o.initLoraWeights === false ? randn([o.r, numEmbeddings], { backend }) : zeros([o.r, numEmbeddings], { backend });
    const B = randn([embeddingDim, o.r], { backend });
    this.dict('lora_embedding_A').set(name, A);
    this.dict('lora_embedding_B').set(name, B);
    this.adapters.set(name, { A, B, scaling: loraScaling(o.loraAlpha, o.r, o.useRslora) });
    if (this.activeAdapters.length === 0) this.activeAdapters = [name];
  }

  deleteAdapter(name: string): void {
    const a = this.get(name);
    if (this.mergedAdapters.includes(name)) throw new Error(`LoraEmbedding: unmerge adapter '${name}' before deleting it`);
    this.dict('lora_embedding_A').delete(name);
    this.dict('lora_embedding_B').delete(name);
    a.A.dispose();
    a.B.dispose();
    this.adapters.delete(name);
    this.activeAdapters = this.activeAdapters.filter((n) => n !== name);
  }

  adapterParameters(name: string): Tensor[] {
    const a = this.get(name);
    return [a.A, a.B];
  }

  adapterStateDict(name: string): Map<string, Tensor> {
    const a = this.get(name);
    return new Map([
      ['lora_embedding_A', a.A],
      ['lora_embedding_B', a.B],
    ]);
  }

  forward(ids: Tensor): Tensor {
    this.unmergeForForward();
    let y = this.base.forward(ids);
    if (this.merged) return y;
    for (const name of this.effectiveAdapters()) {
      const a = this.get(name);
      const at = transpose(a.A);
      const h = gather(at, ids);
      at.dispose();
      const hs = mul(h, a.scaling);
      h.dispose();
      const d = matmul(hs, a.B, { transposeB: true });
      hs.dispose();
      const next = add(y, d);
      d.dispose();
      y.dispose();
      y = next;
    }
    return y;
  }

  /** `scaling * (B A)^T`, `[numEmbeddings, dim]` (a new tensor). */
  deltaWeight(name: string): Tensor {
    const a = this.get(name);
    return noGrad(() => {
      const d = matmul(a.A, a.B, { transposeA: true, transposeB: true });
      const out = mul(d, a.scaling);
      d.dispose();
      return out;
    });
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
    noGrad(() => {
      const d = this.deltaWeight(name);
      const w = op(this.base.weight, d);
      assign(this.base.weight, w);
      d.dispose();
      w.dispose();
    });
  }
}
