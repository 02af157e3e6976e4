import { type LinearLike, Linear, type Module, isLinearLike } from '@webpeft/nn';
import { type BackendName, type Tensor, add, assign, mean, mul, noGrad, square, sub, tensor, tidy, zeros } from '@webpeft/tensor';
import { backendsUnderTest, expectClose, initBackends, disposeAfterTest, randomArray, takeData } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type PeftConfig,
  ParameterDict,
  TunerLayer,
  backendOf,
  configError,
  getPeftModel,
  loadPeftModel,
  matchesTarget,
  memoryFiles,
  registerPeftMethod,
  resolveCommon,
} from '../index.js';
import { Container } from './toy-models.js';

// A method defined entirely outside the package, through its public exports:
// a scaled-identity adapter `y = base(x) + x * d` (d [in], init 0) on square linear layers.

interface ScaleConfig extends PeftConfig {
  peftType: 'SCALED_IDENTITY';
  targetModules?: string[];
  initValue?: number;
}

class ScaledIdentity extends TunerLayer<ScaleConfig> {
  readonly peftType = 'SCALED_IDENTITY';
  private readonly d = new Map<string, Tensor>();

  constructor(base: LinearLike) {
    super(base);
    if (base.inFeatures !== base.outFeatures) throw new Error('SCALED_IDENTITY needs a square layer');
    this.registerModule('scale_d', new ParameterDict());
  }

  private get dict(): ParameterDict {
    return (this as unknown as { scale_d: ParameterDict }).scale_d;
  }

  adapterNames(): string[] {
    return [...this.d.keys()];
  }

  addAdapter(name: string, config: ScaleConfig): void {
    const base = this.base_layer as LinearLike;
    const t = tidy(() => add(zeros([base.inFeatures], { backend: backendOf(base) }), config.initValue ?? 0));
    this.dict.set(name, t);
    this.d.set(name, t);
    if (this.activeAdapters.length === 0) this.activeAdapters = [name];
  }

  deleteAdapter(name: string): void {
    this.dict.delete(name);
    this.d.get(name)?.dispose();
    this.d.delete(name);
  }

  adapterParameters(name: string): Tensor[] {
    return [this.d.get(name)!];
  }

  adapterStateDict(name: string): Map<string, Tensor> {
    return new Map([['scale_d', this.d.get(name)!]]);
  }

  forward(x: Tensor): Tensor {
    let y = (this.base_layer as LinearLike).forward(x);
    for (const name of this.effectiveAdapters()) {
      const xd = mul(x, this.d.get(name)!);
      const next = add(y, xd);
      xd.dispose();
      y.dispose();
      y = next;
    }
    return y;
  }
}

registerPeftMethod<ScaleConfig>({
  peftType: 'SCALED_IDENTITY',
  resolveConfig(c) {
    if (!c.targetModules?.length) configError('SCALED_IDENTITY', 'targetModules is required');
    return resolveCommon({ ...c, initValue: c.initValue ?? 0 });
  },
  configToJson: (c) => ({ target_modules: c.targetModules, init_value: c.initValue }),
  configFromJson: (j) => ({ peftType: 'SCALED_IDENTITY', targetModules: j.target_modules as string[], initValue: j.init_value as number }),
  isTarget: (path, m, c) => matchesTarget({ targetModules: c.targetModules! }, path) && (m instanceof ScaledIdentity || isLinearLike(m)),
  createLayer: (base) => new ScaledIdentity(base as LinearLike),
});

const N = 6;
function model(backend: BackendName): Container {
  const layers = [0, 1].map((i) => {
    const l = new Linear(N, N, { backend, bias: false });
    const w = tensor(randomArray(N * N, 50 + i, -0.5, 0.5) as Float32Array, [N, N], { backend });
    noGrad(() => assign(l.weight, w));
    w.dispose();
    return new Container({ proj: l });
  });
  return new Container({ layers: new Container({ 0: layers[0], 1: layers[1] }) });
}

function run(m: Module, x: Tensor): Tensor {
  const a = (m.getSubmodule('layers.0.proj') as unknown as LinearLike).forward(x);
  const b = (m.getSubmodule('layers.1.proj') as unknown as LinearLike).forward(a);
  a.dispose();
  return b;
}

beforeAll(async () => {
  await initBackends();
});

describe('a user-defined PEFT method through the public API', () => {
  it('wraps, trains, saves and reloads', async () => {
    for (const backend of backendsUnderTest()) {
      const base = disposeAfterTest(model(backend));
      const peft = getPeftModel(base, { peftType: 'SCALED_IDENTITY', targetModules: ['proj'] } as ScaleConfig);
      expect(peft.getNbTrainableParameters().trainable).toBe(2 * N);
      const x = disposeAfterTest(tensor(randomArray(4 * N, 3) as Float32Array, [4, N], { backend }));
      const target = disposeAfterTest(tensor(randomArray(4 * N, 4) as Float32Array, [4, N], { backend }));
      const lossOf = () => {
        const y = run(base, x);
        const diff = sub(y, target);
        const sq = square(diff);
        const l = mean(sq);
        for (const t of [y, diff, sq]) t.dispose();
        return l;
      };
      const losses: number[] = [];
      for (let step = 0; step < 5; step++) {
        const loss = lossOf();
        losses.push(await loss.item());
        loss.backward();
        noGrad(() => {
          for (const p of peft.trainableParameters()) {
            const delta = mul(p.grad!, 0.5);
            const upd = sub(p, delta);
            assign(p, upd);
            for (const t of [delta, upd]) t.dispose();
            p.grad!.dispose();
            p.grad = null;
          }
        });
        loss.dispose();
      }
      expect(losses[4]).toBeLessThan(losses[0]);
      const want = await takeData(run(base, x));

      const dir = memoryFiles();
      await peft.saveAdapter(dir);
      const cfg = JSON.parse(new TextDecoder().decode(dir.files.get('adapter_config.json'))) as Record<string, unknown>;
      expect(cfg.peft_type).toBe('SCALED_IDENTITY');
      const fresh = disposeAfterTest(model(backend));
      const loaded = await loadPeftModel(fresh, dir);
      expect(loaded.adapterStateDict().has('base_model.model.layers.0.proj.scale_d')).toBe(true);
      expectClose(await takeData(run(fresh, x)), want, { rtol: 1e-6, atol: 1e-6, label: `${backend} reloaded` });
      // Disabling works for user methods too.
      const plain = await takeData(loaded.disableAdapter(() => run(fresh, x)));
      const baseOnly = await takeData(run(disposeAfterTest(model(backend)), x));
      expectClose(plain, baseOnly, { rtol: 1e-6, atol: 1e-6, label: `${backend} disabled` });
    }
  });
});
