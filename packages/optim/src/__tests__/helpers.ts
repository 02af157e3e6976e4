import type { BackendName, Tensor } from '@webpeft/tensor';
import { tensor } from '@webpeft/tensor';
import { Adam, AdamW, Lion, type Optimizer, type OptimizerOptions, SGD, type BaseHyper, type ParamGroupSpec } from '../index.js';
import trajectories from './fixtures/optim-trajectories.json' with { type: 'json' };

/** The PyTorch golden trajectories (tools/golden/optim.py). */
export const golden = trajectories as unknown as {
  shapes: number[][];
  groups: number[][];
  init: number[][];
  grads: number[][][];
  configs: Record<string, { optimizer: string; groups: Record<string, unknown>[]; params: number[][][] }>;
};

/** Fresh f32 parameters with the fixture's initial values on `backend`. */
export function makeParams(backend: BackendName, values: readonly (readonly number[])[] = golden.init): Tensor[] {
  return values.map((v, i) => tensor(Float32Array.from(v), golden.shapes[i], { backend, requiresGrad: true }));
}

/** An optimizer of fixture configuration `name` over `params`, in the fixture's two groups. */
export function makeOptimizer(name: string, params: Tensor[], options: OptimizerOptions = {}): Optimizer<BaseHyper> {
  const cfg = golden.configs[name];
  const groups = golden.groups.map((idx, g) => ({ params: idx.map((i) => params[i]), names: idx.map((i) => `p${i}`), ...cfg.groups[g] }));
  const ctor = { SGD, Adam, AdamW, Lion }[cfg.optimizer];
  if (!ctor) throw new Error(`unknown optimizer ${cfg.optimizer}`);
  return new (ctor as unknown as new (g: ParamGroupSpec<BaseHyper>[], o: object) => Optimizer<BaseHyper>)(groups, options);
}

/** Sets each parameter's gradient to step `step`'s fixture gradient (replacing the old one). */
export function setGrads(params: Tensor[], step: number, backend: BackendName): void {
  params.forEach((p, i) => {
    p.grad?.dispose();
    p.grad = tensor(Float32Array.from(golden.grads[step][i]), p.shape, { backend });
  });
}

/** Host copies of the parameters. */
export async function readAll(params: readonly Tensor[]): Promise<Float32Array[]> {
  return Promise.all(params.map(async (p) => (await p.data()) as Float32Array));
}
