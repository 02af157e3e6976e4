import { type LinearLike, kaimingUniformInit, normalInit } from '@webpeft/nn';
import { type Tensor, add, div, dropout, keep, matmul, matmulAdd, mul, noGrad, sqrt, square, sub, sum, tidy, unsqueeze, zeros } from '@webpeft/tensor';
import { backendOf } from '../backend-of.js';
import { addToBase, asDtype } from '../autocast.js';
import { type NewAdapter, TunerLayer } from '../tuner-layer.js';
import { type LoraInit, type ResolvedLoraConfig, isBaseRewritingInit, loraScaling } from './config.js';
import { patternValue } from '../target-match.js';
import { BASE_ADAPTER, type MixedBatchLayer, checkMixedBatch, placeRows, rowIndex, rowsByAdapter, takeRows } from '../mixed-batch.js';

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

/** Per-adapter LoRA settings (PEFT's `scaling` and `lora_dropout` dicts). */
export interface LoraSettings {
  scaling: number;
  dropout: number;
  /** A base-rewriting initialisation (PiSSA, LoftQ) that `initLoraFromBase` has not run yet. */
  pendingInit?: string;
}

/** The tensors a {@link LoraLinear} declares per adapter. */
export type LoraLinearSlot = 'lora_A' | 'lora_B' | 'lora_magnitude_vector';

/**
 * LoRA around any {@link LinearLike} (`Linear`, GPT-2 `Conv1D`, a 4-bit `Linear4bit`:
 * the last makes QLoRA). Per adapter `lora_A.<name>.weight [r, in]` and
 * `lora_B.<name>.weight [out, r]`:
 * `y = base(x) + scaling * B(A(dropout(x)))`, `[..., in] -> [..., out]`.
 * The base layout does not matter: merging goes through `dequantizedWeight()`
 * (`[out, in]`) and `loadWeight`, which handle fan-in-fan-out and quantized storage.
 *
 * DoRA (Liu et al. 2024, arXiv:2402.09353) adds `lora_magnitude_vector.<name>.weight [out]`
 * (saved as `lora_magnitude_vector`), initialised to the row norms of `W + scaling * B A`;
 * the forward is `(m / ||W + s B A||) (W x + s B A x) + b` with the norm treated as a
 * constant (section 4.3).
 */
export class LoraLinear extends TunerLayer<ResolvedLoraConfig, LoraLinearSlot, LinearLike, LoraSettings> implements MixedBatchLayer {
  readonly peftType = 'LORA';
  /** Per-sample adapter names of a mixed-adapter batch (set by `PeftModel`), or null. */
  mixedAdapterNames: readonly string[] | null = null;
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** Row norms used at merge time, per merged DoRA adapter (for an exact unmerge). */
  private readonly doraNorms = new Map<string, Tensor>();

  constructor(base: LinearLike) {
    super(base, { lora_A: 'weight', lora_B: 'weight', lora_magnitude_vector: { kind: 'weight', savedKey: 'lora_magnitude_vector' } });
    this.inFeatures = base.inFeatures;
    this.outFeatures = base.outFeatures;
  }

  /** The wrapped linear layer. */
  get base(): LinearLike {
    return this.base_layer;
  }

  /** Bias of the base layer (for code that reads it through the wrapper). */
  get bias(): Tensor | null {
    return this.base.bias;
  }

  /** Scaling of adapter `name`. */
  scaling(name: string): number {
    return this.adapterSettings(name).scaling;
  }

  /** `lora_A [r, in]`, `lora_B [out, r]`, the DoRA magnitude `[out]` (or null) and the scaling of adapter `name`. */
  weights(name: string): { A: Tensor; B: Tensor; magnitude: Tensor | null; scaling: number } {
    return {
      A: this.adapterTensor(name, 'lora_A'),
      B: this.adapterTensor(name, 'lora_B'),
      magnitude: this.maybeAdapterTensor(name, 'lora_magnitude_vector') ?? null,
      scaling: this.scaling(name),
    };
  }

  protected initAdapter(_name: string, config: ResolvedLoraConfig, path: string): NewAdapter<LoraLinearSlot, LoraSettings> {
    return this.newAdapter(loraLayerOptions(config, path));
  }

  /** Adds adapter `name` with explicit per-layer options. */
  addAdapterWith(name: string, o: LoraLayerOptions): void {
    this.addAdapterTensors(name, tidy(() => this.newAdapter(o)));
  }

  private newAdapter(o: LoraLayerOptions): NewAdapter<LoraLinearSlot, LoraSettings> {
    const backend = backendOf(this.base);
    const { inFeatures: inF, outFeatures: outF } = this;
    const A = o.initLoraWeights === 'gaussian' ? normalInit([o.r, inF], 1 / o.r, { backend }) : kaimingUniformInit([o.r, inF], inF, { backend });
    // B starts at zero so the adapter is a no-op; with init false it keeps nn.Linear's default init.
    const B = o.initLoraWeights === false ? kaimingUniformInit([outF, o.r], o.r, { backend }) : zeros([outF, o.r], { backend });
    const scaling = loraScaling(o.loraAlpha, o.r, o.useRslora);
    // PiSSA / LoftQ read the base weight back, which a synchronous init cannot: the adapter
    // starts as a no-op and initLoraFromBase finishes it (forward refuses until then).
    const settings: LoraSettings = isBaseRewritingInit(o.initLoraWeights) ? { scaling, dropout: o.loraDropout, pendingInit: o.initLoraWeights } : { scaling, dropout: o.loraDropout };
    if (!o.useDora) return { tensors: { lora_A: A, lora_B: B }, settings };
    const magnitude = backend === 'meta' ? zeros([outF], { backend }) : noGrad(() => this.rowNorms(A, B, scaling));
    return { tensors: { lora_A: A, lora_B: B, lora_magnitude_vector: magnitude }, settings };
  }

  forward(x: Tensor): Tensor {
    const names = this.mixedAdapterNames;
    if (names) checkMixedBatch(this.constructor.name, x, names, this);
    this.unmergeForForward();
    if (names && !this.disabled) return this.mixedBatchForward(x, names);
    return tidy(() => {
      let y = this.base.forward(x);
      if (this.merged) return y;
      for (const name of this.effectiveAdapters()) y = this.maybeAdapterTensor(name, 'lora_magnitude_vector') ? this.addDora(y, x, name) : this.addLora(y, x, name);
      return y;
    });
  }

  /**
   * `y + scaling * B(A(dropout(x)))`, with the scale applied to the rank-r intermediate (the
   * smallest tensor). Over an f16 base, x is cast to the adapter's f32 first and the sum
   * rounded once to f16, as PEFT does. Inside a tidy scope.
   */
  private addLora(y: Tensor, x: Tensor, name: string): Tensor {
    checkInitialised(this.adapterSettings(name), name);
    const { A, B, scaling } = this.weights(name);
    const xd = dropout(asDtype(x, A.dtype), this.adapterSettings(name).dropout, this.training);
    const h = matmul(xd, A, { transposeB: true });
    // Two kernels: x A^T, then base + (h B^T) * scaling with the scale and the add in the
    // second matmul's store (as PEFT, the scaling multiplies B's output).
    if (y.dtype === B.dtype) return matmulAdd(h, B, y, { transposeB: true, alpha: scaling });
    return addToBase(y, mul(matmul(h, B, { transposeB: true }), scaling));
  }

  /**
   * PEFT's `_mixed_batch_forward`: the base on the whole batch `x [B, ..., in]`, then each
   * named adapter this layer holds on its rows only, its output (cast to the base's dtype,
   * as PEFT does) added into those rows. `__base__` rows and adapters this layer lacks get
   * the base alone. DoRA adapters are refused, as in PEFT.
   */
  private mixedBatchForward(x: Tensor, names: readonly string[]): Tensor {
    for (const name of new Set(names)) {
      if (name !== BASE_ADAPTER && this.hasAdapter(name) && this.maybeAdapterTensor(name, 'lora_magnitude_vector')) {
        throw new Error(`${this.constructor.name}: cannot pass adapterNames when DoRA is enabled (adapter '${name}' uses DoRA; PEFT 0.21 has no mixed-batch DoRA)`);
      }
    }
    return tidy(() => {
      let y = this.base.forward(x);
      for (const [name, rows] of rowsByAdapter(names)) {
        if (name === BASE_ADAPTER || !this.hasAdapter(name)) continue;
        checkInitialised(this.adapterSettings(name), name);
        const { A, B, scaling } = this.weights(name);
        const idx = rowIndex(rows, x);
        const xd = dropout(asDtype(takeRows(x, idx), A.dtype), this.adapterSettings(name).dropout, this.training);
        const out = mul(matmul(matmul(xd, A, { transposeB: true }), B, { transposeB: true }), scaling);
        y = add(y, placeRows(asDtype(out, y.dtype), idx, x.shape[0]));
      }
      return y;
    });
  }

  /** PEFT's DoRA forward: `y + (m/n - 1) * (W xd) + (m/n) * s * B A xd`. Inside a tidy scope. */
  private addDora(y: Tensor, x: Tensor, name: string): Tensor {
    const { A, B, magnitude, scaling } = this.weights(name);
    const p = this.adapterSettings(name).dropout;
    const norm = noGrad(() => this.rowNorms(A, B, scaling));
    const mns = div(magnitude as Tensor, norm);
    // Over an f16 base the DoRA terms are formed in the adapter's f32 (see addLora).
    const f = A.dtype;
    const xd = dropout(asDtype(x, f), p, this.training);
    const yf = asDtype(y, f);
    let baseResult: Tensor;
    if (this.training && p > 0) baseResult = matmul(xd, noGrad(() => asDtype(this.base.dequantizedWeight(), f)), { transposeB: true });
    else baseResult = this.base.bias ? sub(yf, asDtype(this.base.bias, f)) : yf;
    const lora = matmul(mul(matmul(xd, A, { transposeB: true }), scaling), B, { transposeB: true });
    return asDtype(add(yf, add(mul(baseResult, sub(mns, 1)), mul(lora, mns))), y.dtype);
  }

  /** `||W + s B A||` per output row, `[out]` (W dequantized). */
  private rowNorms(A: Tensor, B: Tensor, scaling: number): Tensor {
    return tidy(() => rowNorm(add(asDtype(this.base.dequantizedWeight(), A.dtype), delta(A, B, scaling))));
  }

  /** `scaling * B A`, `[out, in]` (a new tensor). */
  deltaWeight(name: string): Tensor {
    const { A, B, scaling } = this.weights(name);
    return noGrad(() => tidy(() => delta(A, B, scaling)));
  }

  /**
   * `W` (dequantized `[out, in]`) with adapters `names` folded in, one after another, as
   * a new tensor; the base is untouched.
   */
  mergedWeight(names: string[]): Tensor {
    return noGrad(() =>
      tidy(() => {
        let w = this.base.dequantizedWeight();
        for (const name of names) w = this.fold(w, name).weight;
        return w;
      }),
    );
  }

  /** `W + s B A`, and for DoRA `(m / ||W + s B A||) (W + s B A)` with the norm used. Inside a tidy scope. */
  private fold(W: Tensor, name: string): { weight: Tensor; norm: Tensor | null } {
    const { A, B, magnitude, scaling } = this.weights(name);
    // An f16 base folds in f32 and rounds the merged weight once to f16.
    const next = add(asDtype(W, A.dtype), delta(A, B, scaling));
    if (!magnitude) return { weight: asDtype(next, W.dtype), norm: null };
    const norm = rowNorm(next);
    return { weight: asDtype(mul(next, unsqueeze(div(magnitude, norm), 1)), W.dtype), norm };
  }

  override merge(adapterNames: string[] = this.activeAdapters): void | Promise<void> {
    const todo = adapterNames.filter((n) => !this.mergedAdapters.includes(n));
    // Adapters fold in one after another: each reads the weight the previous one wrote.
    const from = (i: number): void | Promise<void> => {
      for (; i < todo.length; i++) {
        const name = todo[i];
        const { weight, norm } = noGrad(() => tidy(() => this.fold(this.base.dequantizedWeight(), name)));
        const done = () => {
          weight.dispose();
          if (norm) this.doraNorms.set(name, keep(norm));
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

  /**
   * Frees what `unmerge` would need (DoRA's row norms of the merged weight), for a layer
   * whose merged base leaves the model for good (`mergeAndUnload`): nothing else frees them.
   */
  releaseMergeState(): void {
    for (const norm of this.doraNorms.values()) norm.dispose();
    this.doraNorms.clear();
  }

  override unmerge(): void | Promise<void> {
    while (this.mergedAdapters.length > 0) {
      const name = this.mergedAdapters.pop() as string;
      const { A, B, magnitude, scaling } = this.weights(name);
      const norm = this.doraNorms.get(name);
      this.doraNorms.delete(name);
      // W' = f (W + s B A) with f = m / n for DoRA (f = 1 for LoRA), so W = W' / f - s B A.
      const orig = noGrad(() =>
        tidy(() => {
          const W0 = this.base.dequantizedWeight();
          const W = asDtype(W0, A.dtype);
          const unscaled = magnitude && norm ? div(W, unsqueeze(div(magnitude, norm), 1)) : W;
          return asDtype(sub(unscaled, delta(A, B, scaling)), W0.dtype);
        }),
      );
      norm?.dispose();
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

function checkInitialised(s: LoraSettings, name: string): void {
  if (s.pendingInit) throw new Error(`LoraLinear: adapter '${name}' uses initLoraWeights '${s.pendingInit}', which rewrites the base weight: run \`await initLoraFromBase(peft)\` before the first forward`);
}

/** `scaling * B A`, `[out, in]`. */
function delta(A: Tensor, B: Tensor, scaling: number): Tensor {
  return tidy(() => mul(matmul(B, A), scaling));
}

/** L2 norm of each row of `[rows, cols]` -> `[rows]`. */
export function rowNorm(w: Tensor): Tensor {
  return tidy(() => sqrt(sum(square(w), 1)));
}
