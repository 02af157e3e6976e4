/**
 * Loss-level resume: train N steps; checkpoint to disk at step K; build a fresh model
 * (another init), optimizer and scheduler, scramble the RNG, load the checkpoint, train
 * on. The losses of steps K+1..N and the final weights must be bit-identical to the
 * uninterrupted run, for every optimizer on every backend, with dropout on (so the RNG
 * state matters) and a warmup + cosine schedule (so the scheduler state matters).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GPT2LMHeadModel } from '@webpeft/nn';
import { Adam, AdamW, type LambdaLr, Lion, type Optimizer, type BaseHyper, SGD, cosineWithWarmup } from '@webpeft/optim';
import { AdamW8bit, PagedAdamW, PagedAdamW8bit } from '@webpeft/quant';
import { type BackendName, type Tensor, manualSeed, tensor, tidy } from '@webpeft/tensor';
import { backendsUnderTest, initBackends, randomInts } from '@webpeft/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileCheckpointStore, loadCheckpoint, saveCheckpoint, trainableWeights } from '../index.js';
import { uploadCodeTables } from './code-tables.js';

// vocab 3200 x 32 = 102,400 elements in the (tied) embedding: 8-bit states (>= 4096) and
// paged on webgpu (>= 100,000); the attention and MLP weights keep 32-bit states.
const CONFIG = { vocab_size: 3200, n_positions: 16, n_embd: 32, n_layer: 1, n_head: 2, resid_pdrop: 0.1, embd_pdrop: 0.1, attn_pdrop: 0.1 };
const BATCH = 2;
const SEQ = 8;
const TOTAL = 6;
const SAVE_AT = 3;
const BUDGET = 300_000;

type Groups = { params: Tensor[]; names: string[]; weightDecay?: number }[];
const FACTORIES: Record<string, (g: Groups) => Optimizer<BaseHyper>> = {
  AdamW: (g) => new AdamW(g, { lr: 3e-3, weightDecay: 0.01 }),
  Adam: (g) => new Adam(g, { lr: 3e-3 }),
  SGD: (g) => new SGD(g, { lr: 0.05, momentum: 0.9 }),
  Lion: (g) => new Lion(g, { lr: 3e-4, weightDecay: 0.01 }),
  AdamW8bit: (g) => new AdamW8bit(g, { lr: 3e-3 }),
  PagedAdamW: (g) => new PagedAdamW(g, { lr: 3e-3, deviceBudgetBytes: BUDGET }),
  PagedAdamW8bit: (g) => new PagedAdamW8bit(g, { lr: 3e-3, deviceBudgetBytes: BUDGET }),
};

let root: string;
beforeAll(async () => {
  await uploadCodeTables(await initBackends());
  root = mkdtempSync(join(tmpdir(), 'webpeft-resume-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

interface Run {
  model: GPT2LMHeadModel;
  opt: Optimizer<BaseHyper>;
  sched: LambdaLr;
}

/** A fresh model (initialised from `initSeed`) with two parameter groups: matrices with weight decay, vectors without. */
function makeRun(name: string, backend: BackendName, initSeed: number): Run {
  manualSeed(initSeed);
  const model = new GPT2LMHeadModel(CONFIG, { backend });
  model.train();
  const named = model.namedParameters();
  const matrices = named.filter(([, p]) => p.shape.length === 2);
  const vectors = named.filter(([, p]) => p.shape.length !== 2);
  const opt = FACTORIES[name]([
    { params: matrices.map(([, p]) => p), names: matrices.map(([n]) => n) },
    { params: vectors.map(([, p]) => p), names: vectors.map(([n]) => n), weightDecay: 0 },
  ]);
  const sched = cosineWithWarmup(opt, { warmupSteps: 2, totalSteps: TOTAL });
  return { model, opt, sched };
}

/** Trains steps `from..to-1` (batch `t` is a fixed function of `t`: the data position is the step) and returns their losses. */
async function train(r: Run, backend: BackendName, from: number, to: number): Promise<number[]> {
  const losses: number[] = [];
  for (let t = from; t < to; t++) {
    const ids = randomInts(BATCH * SEQ, CONFIG.vocab_size, 1000 + t);
    const loss = tidy(() => {
      const inputIds = tensor(ids, [BATCH, SEQ], { dtype: 'i32', backend });
      const l = r.model.forward({ inputIds, labels: inputIds }).loss!;
      l.backward();
      return l;
    });
    losses.push(await loss.item());
    loss.dispose();
    expect((await r.opt.step()).skipped).toBe(false);
    r.sched.step();
    r.opt.zeroGrad();
  }
  return losses;
}

const bits = async (t: Tensor) => Array.from(new Uint32Array(((await t.data()) as Float32Array).buffer));

function dispose(r: Run): void {
  r.opt.disposeState();
  r.model.dispose();
}

describe('resume from a checkpoint on disk: losses K+1..N bit-identical to the uninterrupted run', () => {
  for (const name of Object.keys(FACTORIES)) {
    it(name, async () => {
      const store = fileCheckpointStore();
      for (const backend of backendsUnderTest()) {
        const dir = join(root, `${name}-${backend}`, `checkpoint-${SAVE_AT}`);
        const ref = makeRun(name, backend, 1);
        manualSeed(2); // the dropout stream of the run
        const first = await train(ref, backend, 0, SAVE_AT);
        await saveCheckpoint(store, dir, { weights: trainableWeights(ref.model), optimizer: ref.opt, scheduler: ref.sched, step: SAVE_AT, dataPosition: { nextBatch: SAVE_AT } });
        const rest = await train(ref, backend, SAVE_AT, TOTAL);

        const resumed = makeRun(name, backend, 77); // another init: every weight must come from the checkpoint
        manualSeed(12345); // and another RNG position: the dropout stream too
        const loaded = await loadCheckpoint(store, dir, { weights: trainableWeights(resumed.model), optimizer: resumed.opt, scheduler: resumed.sched });
        expect(loaded.step).toBe(SAVE_AT);
        expect(loaded.dataPosition).toEqual({ nextBatch: SAVE_AT });
        expect(resumed.opt.paramGroups.map((g) => g.lr)).toEqual(loaded.manifest.optimizer.paramGroups.map((g) => g.lr));
        const again = await train(resumed, backend, SAVE_AT, TOTAL);

        expect(again, `${name} ${backend}: losses of steps ${SAVE_AT + 1}..${TOTAL} (steps 1..${SAVE_AT}: ${first.join(', ')})`).toEqual(rest);
        expect(new Set([...first, ...rest]).size, 'losses move from step to step').toBe(TOTAL);
        const refParams = ref.model.namedParameters();
        const newParams = new Map(resumed.model.namedParameters());
        for (const [n, p] of refParams) expect(await bits(newParams.get(n)!), `${name} ${backend} ${n}`).toEqual(await bits(p));
        dispose(ref);
        dispose(resumed);
      }
    });
  }

  it('without the RNG state the same resume diverges (dropout draws from the global stream)', async () => {
    const store = fileCheckpointStore();
    const backend = backendsUnderTest()[0];
    const dir = join(root, `rng-${backend}`);
    const ref = makeRun('AdamW', backend, 1);
    manualSeed(2);
    await train(ref, backend, 0, SAVE_AT);
    await saveCheckpoint(store, dir, { weights: trainableWeights(ref.model), optimizer: ref.opt, scheduler: ref.sched, step: SAVE_AT });
    const rest = await train(ref, backend, SAVE_AT, TOTAL);
    const resumed = makeRun('AdamW', backend, 77);
    await loadCheckpoint(store, dir, { weights: trainableWeights(resumed.model), optimizer: resumed.opt, scheduler: resumed.sched });
    manualSeed(12345); // overrides the restored RNG state
    const again = await train(resumed, backend, SAVE_AT, TOTAL);
    expect(again[0]).not.toBe(rest[0]);
    dispose(ref);
    dispose(resumed);
  });
});
