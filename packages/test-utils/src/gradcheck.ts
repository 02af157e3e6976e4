import { type Tensor, mul, noGrad, sum, tensor, tidy } from '@webpeft/tensor';
import { expectClose } from './close.js';

/** Options of {@link gradcheck}. */
export interface GradcheckOptions {
  /** Finite-difference step (default 1e-6). */
  eps?: number;
  rtol?: number;
  atol?: number;
  /** Inputs (by position) not to differentiate (e.g. integer labels). */
  constant?: readonly number[];
  label?: string;
}

/**
 * Checks the analytic gradients of `fn` against central finite differences in float64
 * on the cpu backend. `fn` maps the inputs to a tensor; its weighted sum with fixed
 * random weights is the scalar that gets differentiated. Leaves no tensor alive.
 */
export async function gradcheck(
  fn: (...xs: Tensor[]) => Tensor,
  inputs: readonly { data: Float64Array | Int32Array; shape: readonly number[] }[],
  opts: GradcheckOptions = {},
): Promise<void> {
  const eps = opts.eps ?? 1e-6;
  const constant = new Set(opts.constant ?? []);
  const make = (datas: (Float64Array | Int32Array)[], grad: boolean) =>
    inputs.map((inp, i) => tensor(datas[i], inp.shape, { backend: 'cpu', requiresGrad: grad && !constant.has(i) && datas[i] instanceof Float64Array }));
  const base = inputs.map((i) => i.data);
  const xs = make(base, true);
  let w: Tensor | null = null;
  try {
    // The graph's intermediates end with the scope; the inputs keep their gradients.
    w = tidy(() => {
      const out = fn(...xs);
      // Fixed weights make every output element matter with a distinct coefficient.
      const weights = new Float64Array(out.size).map((_, i) => Math.cos(1.3 * i + 0.7));
      const weighted = tensor(weights, out.shape, { backend: 'cpu' });
      sum(mul(out, weighted)).backward();
      return weighted;
    });
    const weightsT = w;
    const lossAt = async (datas: (Float64Array | Int32Array)[]): Promise<number> => {
      const l = noGrad(() => tidy(() => sum(mul(fn(...make(datas, false)), weightsT))));
      try {
        return await l.item();
      } finally {
        l.dispose();
      }
    };
    for (let i = 0; i < inputs.length; i++) {
      if (constant.has(i) || !(base[i] instanceof Float64Array)) continue;
      const analytic = await xs[i].grad!.data();
      const numeric = new Float64Array(base[i].length);
      for (let j = 0; j < base[i].length; j++) {
        const plus = base.map((d) => d.slice());
        const minus = base.map((d) => d.slice());
        plus[i][j] += eps;
        minus[i][j] -= eps;
        numeric[j] = ((await lossAt(plus)) - (await lossAt(minus))) / (2 * eps);
      }
      expectClose(analytic, numeric, { rtol: opts.rtol ?? 1e-5, atol: opts.atol ?? 1e-6, label: `${opts.label ?? 'gradcheck'} input ${i}` });
    }
  } finally {
    // Disposing an input disposes its gradient too.
    for (const x of xs) x.dispose();
    w?.dispose();
  }
}
