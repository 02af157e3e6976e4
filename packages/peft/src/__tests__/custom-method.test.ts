import { type LinearLike, Linear, type Module, isLinearLike } from '@webpeft/nn';
import { type BackendName, type Tensor, add, assign, mean, mul, noGrad, square, sub, tensor, tidy, zeros } from '@webpeft/tensor';
import { backendsUnderTest, expectClose, initBackends, sgdStep, randomArray } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type NewAdapter,
  type PeftConfig,
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
import { checkLeaksPerTest, own } from './leak-check.js';

checkLeaksPerTest();

// A method defined entirely outside the package, through its public exports:
// a scaled-identity adapter `y = base(x) + x * d` (d [in], init 0) on square linear layers.

interface ScaleConfig extends PeftConfig {
  peftType: 'SCALED_IDENTITY';
  targetModules?: string[];
  initValue?: number;
}

class ScaledIdentity extends TunerLayer<ScaleConfig, 'scale_d', LinearLike> {
  readonly peftType = 'SCALED_IDENTITY';

  constructor(base: LinearLike) {
    if (base.inFeatures !== base.outFeatures) throw new Error('SCALED_IDENTITY needs a square layer');
    super(base, { scale_d: 'parameter' });
  }

  protected initAdapter(_name: string, config: ScaleConfig): NewAdapter<'scale_d', undefined> {
    return { tensors: { scale_d: add(zeros([this.base_layer.inFeatures], { backend: backendOf(this.base_layer) }), config.initValue ?? 0) } };
  }

  forward(x: Tensor): Tensor {
    return tidy(() => {
      let y = this.base_layer.forward(x);
      for (const name of this.effectiveAdapters()) y = add(y, mul(x, this.adapterTensor(name, 'scale_d')));
      return y;
    });
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
  isTarget: (path, m, c) => matchesTarget({ targetModules: c.targetModules ?? [] }, path) && (m instanceof ScaledIdentity || isLinearLike(m)),
  createLayer(base) {
    if (!isLinearLike(base)) throw new Error(`SCALED_IDENTITY: cannot wrap ${base.constructor.name}`);
    return new ScaledIdentity(base);
  },
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
      const base = own(model(backend));
      const peft = getPeftModel(base, { peftType: 'SCALED_IDENTITY', targetModules: ['proj'] } as ScaleConfig);
      expect(peft.getNbTrainableParameters().trainable).toBe(2 * N);
      const x = own(tensor(randomArray(4 * N, 3) as Float32Array, [4, N], { backend }));
      const target = own(tensor(randomArray(4 * N, 4) as Float32Array, [4, N], { backend }));
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
        sgdStep(peft.trainableParameters(), 0.5);
        loss.dispose();
      }
      expect(losses[4]).toBeLessThan(losses[0]);
      const want = await own(run(base, x)).data();

      const dir = memoryFiles();
      await peft.saveAdapter(dir);
      const cfg = JSON.parse(new TextDecoder().decode(dir.files.get('adapter_config.json'))) as Record<string, unknown>;
      expect(cfg.peft_type).toBe('SCALED_IDENTITY');
      const fresh = own(model(backend));
      const loaded = await loadPeftModel(fresh, dir);
      expect(loaded.adapterStateDict().has('base_model.model.layers.0.proj.scale_d')).toBe(true);
      expectClose(await own(run(fresh, x)).data(), want, { rtol: 1e-6, atol: 1e-6, label: `${backend} reloaded` });
      // Disabling works for user methods too.
      const plain = await own(loaded.disableAdapter(() => run(fresh, x))).data();
      const baseOnly = await own(run(own(model(backend)), x)).data();
      expectClose(plain, baseOnly, { rtol: 1e-6, atol: 1e-6, label: `${backend} disabled` });
      // A method whose layer has no merge says so, naming the method.
      await expect(loaded.merge()).rejects.toThrow(/SCALED_IDENTITY: merging adapters into the base weights is not supported/);
      await expect(loaded.mergeAndUnload()).rejects.toThrow(/SCALED_IDENTITY: merging/);
      await expect(loaded.mergeAndUnload({ dequantize: true })).rejects.toThrow(/SCALED_IDENTITY does not support the dequantize option/);
    }
  });
});
