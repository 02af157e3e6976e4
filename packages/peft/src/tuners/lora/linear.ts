import { type LinearLike, kaimingUniformInit, normalInit } from '@webpeft/nn';
import { type Tensor, add, div, dropout, matmul, mul, noGrad, sqrt, square, sub, sum, tidy, unsqueeze, zeros } from '@webpeft/tensor';
import { backendOf } from '../backend-of.js';
import { AdapterWeight, ModuleDict } from '../containers.js';
import { TunerLayer } from '../tuner-layer.js';
import { type LoraInit, type ResolvedLoraConfig, loraScaling } from './config.js';
import { patternValue } from '../target-match.js';

/** What a LoRA layer needs to add one adapter (resolved per module from the config and its patterns). */
export interface LoraLayerOptions {
  r: number;
  loraAlpha: number;
  loraDropout: number;
  useRslora: boolean;
  useDora: boolean;
  initLoraWeights: LoraInit;
}

/** The options for the module at `path`: rank and alpha from the patterns, the rest from `c`. */
export function loraLayerOptions(c: ResolvedLoraConfig, path: string): LoraLayerOptions {
  return {
    r: patternValue(c.rankPattern, path, c.r),
    loraAlpha: patternValue(c.alphaPattern, path, c.loraAlpha),
    loraDropout: c.loraDropout,
    useRslora: c.useRslora,
    useDora: c.useDora,
    initLoraWeights: c.initLoraWeights,
  };
}

interface LinearAdapter {
  A: Tensor;
  B: Tensor;
  scaling: number;
  dropout: number;
  /** DoRA magnitude `[out]`, or null. */
  magnitude: Tensor | null;
}

/**
 * LoRA around any {@link LinearLike} (`Linear`, GPT-2 `Conv1D`, a 4-bit `Linear4bit`:
 * the last makes QLoRA). Per adapter `lora_A.<name>.weight [r, in]` and
 * `lora_B.<name>.weight [out, r]`:
 * `y = base(x) + scaling * B(A(dropout(x)))`, `[..., in] -> [..., out]`.
 * The base layout does not matter: merging goes through `dequantizedWeight()`
 * (`[out, in]`) and `loadWeight`, which handle fan-in-fan-out and quantized storage.
 *
 * DoRA (Liu et al. 2024, arXiv:2402.09353) adds `lora_magnitude_vector.<name>.weight [out]`,
 * initialised to the row norms of `W + scaling * B A`; the forward is
 * `(m / ||W + s B A||) (W x + s B A x) + b` with the norm treated as a constant (section 4.3).
 */
export class LoraLinear extends TunerLayer<ResolvedLoraConfig> {
  readonly peftType = 'LORA';
  readonly inFeatures: number;
  readonly outFeatures: number;
  private readonly adapters = new Map<string, LinearAdapter>();
  /** Row norms used at merge time, per merged DoRA adapter (for an exact unmerge). */
  private readonly doraNorms = new Map<string, Tensor>();

  constructor(base: LinearLike) {
    super(base);
    this.inFeatures = base.inFeatures;
    this.outFeatures = base.outFeatures;
    this.registerModule('lora_A', new ModuleDict<AdapterWeight>());
    this.registerModule('lora_B', new ModuleDict<AdapterWeight>());
    this.registerModule('lora_magnitude_vector', new ModuleDict<AdapterWeight>());
  }

  /** The wrapped linear layer. */
  get base(): LinearLike {
    return this.base_layer as LinearLike;
  }

  /** Bias of the base layer (for code that reads it through the wrapper). */
  get bias(): Tensor | null {
    return this.base.bias;
  }

  private dict(name: 'lora_A' | 'lora_B' | 'lora_magnitude_vector'): ModuleDict<AdapterWeight> {
    return (this as unknown as Record<string, ModuleDict<AdapterWeight>>)[name];
  }

  adapterNames(): string[] {
    return [...this.adapters.keys()];
  }

  /** Scaling of adapter `name`. */
  scaling(name: string): number {
    return this.get(name).scaling;
  }

  /** `lora_A [r, in]`, `lora_B [out, r]` and the DoRA magnitude of adapter `name`. */
  weights(name: string): { A: Tensor; B: Tensor; magnitude: Tensor | null; scaling: number } {
    const a = this.get(name);
    return { A: a.A, B: a.B, magnitude: a.magnitude, scaling: a.scaling };
  }

  private get(name: string): LinearAdapter {
    const a = this.adapters.get(name);
    if (!a) throw new Error(`LoraLinear: no adapter '${name}' (have: ${this.adapterNames().join(', ') || 'none'})`);
    return a;
  }

  addAdapter(name: string, config: ResolvedLoraConfig, path: string): void {
    this.addAdapterWith(name, loraLayerOptions(config, path));
  }

  /** Adds adapter `name` with explicit per-layer options. */
  addAdapterWith(name: string, o: LoraLayerOptions): void {
    if (this.adapters.has(name)) throw new Error(`LoraLinear: adapter '${name}' already exists`);
    const backend = backendOf(this.base);
    const { inFeatures: inF, outFeatures: outF } = this;
    const A =
      o.initLoraWeights === 'gaussian' ? normalInit([o.r, inF], 1 / o.r, { backend }) : kaimingUniformInit([o.r, inF], inF, { backend });
    // B starts at zero so the adapter is a no-op; with init false it keeps nn.Linear's default init.
    const B = o.initLoraWeights === false ? kaimingUniformInit([outF, o.r], o.r, { backend }) : zeros([outF, o.r], { backend });
    const scaling = loraScaling(o.loraAlpha, o.r, o.useRslora);
    this.dict('lora_A').set(name, new AdapterWeight(A));
    this.dict('lora_B').set(name, new AdapterWeight(B));
    let magnitude: Tensor | null = null;
    if (o.useDora) {
      magnitude = backend === 'meta' ? zeros([outF], { backend }) : noGrad(() => this.rowNorms(A, B, scaling));
      this.dict('lora_magnitude_vector').set(name, new AdapterWeight(magnitude));
    }
    this.adapters.set(name, { A, B, scaling, dropout: o.loraDropout, magnitude });
    if (this.activeAdapters.length === 0) this.activeAdapters = [name];
  }

  deleteAdapter(name: string): void {
    const a = this.get(name);
    if (this.mergedAdapters.includes(name)) throw new Error(`LoraLinear: unmerge adapter '${name}' before deleting it`);
    for (const d of ['lora_A', 'lora_B', 'lora_magnitude_vector'] as const) {
      if (this.dict(d).has(name)) this.replaceSubmodule(d, this.dict(d).without(name));
    }
    a.A.dispose();
    a.B.dispose();
    a.magnitude?.dispose();
    this.adapters.delete(name);
    this.activeAdapters = this.activeAdapters.filter((n) => n !== name);
  }

  adapterParameters(name: string): Tensor[] {
    const a = this.get(name);
    return a.magnitude ? [a.A, a.B, a.magnitude] : [a.A, a.B];
  }

  adapterStateDict(name: string): Map<string, Tensor> {
    const a = this.get(name);
    const out = new Map<string, Tensor>([
      ['lora_A.weight', a.A],
      ['lora_B.weight', a.B],
    ]);
    // PEFT saves the DoRA magnitude without the '.weight' suffix.
    if (a.magnitude) out.set('lora_magnitude_vector', a.magnitude);
    return out;
  }

  forward(x: Tensor): Tensor {
    this.unmergeForForward();
    let y = this.base.forward(x);
    if (this.merged) return y;
    for (const name of this.effectiveAdapters()) {
      const a = this.get(name);
      const next = a.magnitude ? this.addDora(y, x, a) : this.addLora(y, x, a);
      y.dispose();
      y = next;
    }
    return y;
  }

  /** `y + scaling * B(A(dropout(x)))`, with the scale applied to the rank-r intermediate (the smallest tensor). */
  private addLora(y: Tensor, x: Tensor, a: LinearAdapter): Tensor {
    const xd = dropout(x, a.dropout, this.training);
    const h = matmul(xd, a.A, { transposeB: true });
    xd.dispose();
    const hs = mul(h, a.scaling);
    h.dispose();
    const d = matmul(hs, a.B, { transposeB: true });
    hs.dispose();
    const out = add(y, d);
    d.dispose();
    return out;
  }

  /** PEFT's DoRA forward: `y + (m/n - 1) * (W xd) + (m/n) * s * B A xd`. */
  private addDora(y: Tensor, x: Tensor, a: LinearAdapter): Tensor {
    const m = a.magnitude as Tensor;
    const norm = noGrad(() => this.rowNorms(a.A, a.B, a.scaling));
    const mns = div(m, norm);
    norm.dispose();
    const useDropout = this.training && a.dropout > 0;
    const xd = dropout(x, a.dropout, this.training);
    let baseResult: Tensor;
    if (useDropout) {
      const W = noGrad(() => this.base.dequantizedWeight());
      baseResult = matmul(xd, W, { transposeB: true });
      W.dispose();
    } else {
      baseResult = this.base.bias ? sub(y, this.base.bias) : add(y, 0);
    }
    const h = matmul(xd, a.A, { transposeB: true });
    xd.dispose();
    const hs = mul(h, a.scaling);
    h.dispose();
    const lora = matmul(hs, a.B, { transposeB: true });
    hs.dispose();
    const mns1 = sub(mns, 1);
    const t1 = mul(baseResult, mns1);
    baseResult.dispose();
    mns1.dispose();
    const t2 = mul(lora, mns);
    lora.dispose();
    mns.dispose();
    const dora = add(t1, t2);
    t1.dispose();
    t2.dispose();
    const out = add(y, dora);
    dora.dispose();
    return out;
  }

  /** `||W + s B A||` per output row, `[out]` (W dequantized). */
  private rowNorms(A: Tensor, B: Tensor, scaling: number): Tensor {
    const W = this.base.dequantizedWeight();
    const delta = this.delta(A, B, scaling);
    const merged = add(W, delta);
    W.dispose();
    delta.dispose();
    const n = rowNorm(merged);
    merged.dispose();
    return n;
  }

  private delta(A: Tensor, B: Tensor, scaling: number): Tensor {
    const ba = matmul(B, A);
    const d = mul(ba, scaling);
    ba.dispose();
    return d;
  }

  /** `scaling * B A`, `[out, in]` (a new tensor). */
  deltaWeight(name: string): Tensor {
    const a = this.get(name);
    return noGrad(() => this.delta(a.A, a.B, a.scaling));
  }

  /**
   * `W` (dequantized `[out, in]`) with adapters `names` folded in, as a new tensor;
   * the base is untouched. Also returns the DoRA row norms used, by adapter.
   */
  mergedWeight(names: string[]): { weight: Tensor; doraNorms: Map<string, Tensor> } {
    return noGrad(() => {
      let merged = this.base.dequantizedWeight();
      const doraNorms = new Map<string, Tensor>();
      for (const name of names) {
        const a = this.get(name);
        const delta = this.delta(a.A, a.B, a.scaling);
        let next = add(merged, delta);
        delta.dispose();
        if (a.magnitude) {
          const norm = rowNorm(next);
          const ratio = div(a.magnitude, norm);
          const factor = unsqueeze(ratio, 1);
          const scaled = mul(next, factor);
          for (const t of [next, ratio, factor]) t.dispose();
          next = scaled;
          doraNorms.set(name, norm);
        }
        merged.dispose();
        merged = next;
      }
      return { weight: merged, doraNorms };
    });
  }

  override merge(adapterNames: string[] = this.activeAdapters): void | Promise<void> {
    const todo = adapterNames.filter((n) => !this.mergedAdapters.includes(n));
    // Adapters fold in one after another: each reads the weight the previous one wrote.
    const from = (i: number): void | Promise<void> => {
      for (; i < todo.length; i++) {
        const name = todo[i];
        const { weight, doraNorms } = this.mergedWeight([name]);
        const done = () => {
          weight.dispose();
          for (const [k, n] of doraNorms) this.doraNorms.set(k, n);
          this.mergedAdapters.push(name);
        };
        const pending = this.base.loadWeight(weight);
        if (pending instanceof Promise) {
          const next = i + 1;
          return pending.then(() => {
            done();
            return from(next);
          });
        }
        done();
      }
    };
    return from(0);
  }

  override unmerge(): void | Promise<void> {
    while (this.mergedAdapters.length > 0) {
      const name = this.mergedAdapters.pop() as string;
      const orig = noGrad(() => {
        const a = this.get(name);
        const W = this.base.dequantizedWeight();
        const delta = this.delta(a.A, a.B, a.scaling);
        let unscaled = W;
        if (a.magnitude) {
          const norm = this.doraNorms.get(name) as Tensor;
          const factor = tidy(() => unsqueeze(div(a.magnitude!, norm), 1)); // frees the div handle
          unscaled = div(W, factor);
          factor.dispose();
          norm.dispose();
          this.doraNorms.delete(name);
        }
        const restored = sub(unscaled, delta);
        for (const t of new Set([W, unscaled, delta])) t.dispose();
        return restored;
      });
      const pending = this.base.loadWeight(orig);
      if (pending instanceof Promise) {
        return pending.then(() => {
          orig.dispose();
          return this.unmerge();
        });
      }
      orig.dispose();
    }
  }
}

/** L2 norm of each row of `[rows, cols]` -> `[rows]`. */
export function rowNorm(w: Tensor): Tensor {
  const sq = square(w);
  const s = sum(sq, 1);
  sq.dispose();
  const n = sqrt(s);
  s.dispose();
  return n;
}
