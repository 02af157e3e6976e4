/**
 * The checkpoint format over an in-memory store (both runtimes): a round trip restores
 * weights, optimizer, scheduler and RNG exactly; every damaged or mismatched checkpoint
 * is refused with an error naming the file and field, and changes nothing.
 */
import { AdamW, type LambdaLr, type OptimizerStateDict, SGD, cosineWithWarmup } from '@webpeft/optim';
import { type BackendName, type Tensor, getRngState, manualSeed, mean, mul, randn, setRngState, square, tensor, tidy } from '@webpeft/tensor';
import { backendsUnderTest, initBackends, randomArray } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { CHECKPOINT_FILES, CheckpointError, type JsonValue, crc32, loadCheckpoint, memoryCheckpointStore, saveCheckpoint } from '../index.js';

beforeAll(async () => {
  await initBackends();
});

interface Objects {
  w: Tensor;
  b: Tensor;
  opt: AdamW;
  sched: LambdaLr;
}

function make(backend: BackendName, seed: number): Objects {
  const w = tensor(randomArray(12, seed), [3, 4], { backend, requiresGrad: true });
  const b = tensor(randomArray(4, seed + 1), [4], { backend, requiresGrad: true });
  const opt = new AdamW([{ params: [w, b], names: ['layer.weight', 'layer.bias'] }], { lr: 1e-2, weightDecay: 0.1 });
  const sched = cosineWithWarmup(opt, { warmupSteps: 1, totalSteps: 10 });
  return { w, b, opt, sched };
}

async function steps(o: Objects, n: number, seed: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    tidy(() => {
      const x = tensor(randomArray(12, seed + i), [3, 4], { backend: o.w.backend.name });
      mean(square(mul(o.w, x))).backward();
      mean(square(o.b)).backward();
    });
    await o.opt.step();
    o.sched.step();
    o.opt.zeroGrad();
  }
}

const weightsOf = (o: Objects) => ({ 'layer.weight': o.w, 'layer.bias': o.b });
const bitsOf = async (t: Tensor) => Array.from(new Uint32Array(((await t.data()) as Float32Array).slice().buffer));

/** Everything a load could change, as plain comparable data. */
async function snapshot(o: Objects) {
  const sd: OptimizerStateDict = await o.opt.stateDict();
  const state = Object.entries(sd.state).map(([k, s]) => [k, s.step, Object.entries(s.buffers).map(([n, buf]) => [n, Array.from(new Uint32Array(buf.data.slice().buffer))])]);
  return { w: await bitsOf(o.w), b: await bitsOf(o.b), state, groups: JSON.stringify(sd.paramGroups), sched: o.sched.stateDict(), rng: getRngState() };
}

function dispose(...os: Objects[]): void {
  for (const o of os) {
    o.opt.disposeState();
    o.w.dispose();
    o.b.dispose();
  }
}

type Manifest = Record<string, JsonValue> & { rng: Record<string, JsonValue>; scheduler: Record<string, JsonValue> };

/** Copies folder `from` to `to`, with the manifest edited by `edit` and file bytes by `bytes`. */
function tamper(store: ReturnType<typeof memoryCheckpointStore>, from: string, to: string, edit: (m: Manifest) => void, bytes?: (name: string, b: Uint8Array) => Uint8Array | undefined): void {
  const files = new Map(store.folders.get(from));
  const m = JSON.parse(new TextDecoder().decode(files.get(CHECKPOINT_FILES.manifest))) as Manifest;
  edit(m);
  files.set(CHECKPOINT_FILES.manifest, new TextEncoder().encode(JSON.stringify(m)));
  if (bytes) {
    for (const [name, b] of [...files]) {
      const next = bytes(name, b.slice());
      if (next === undefined) files.delete(name);
      else files.set(name, next);
    }
  }
  store.folders.set(to, files);
}

describe('trainer checkpoint: round trip', () => {
  it('restores weights, optimizer state, scheduler and RNG exactly into fresh objects', async () => {
    for (const backend of backendsUnderTest()) {
      const store = memoryCheckpointStore();
      const src = make(backend, 1);
      await steps(src, 3, 100);
      manualSeed(5);
      randn([7]).dispose(); // move the RNG off its seed
      const rng = getRngState();
      const manifest = await saveCheckpoint(store, 'ck', { weights: weightsOf(src), optimizer: src.opt, scheduler: src.sched, step: 3, epoch: 0.25, dataPosition: { sampler: 12345 }, metadata: { run: 'test' } });
      expect(manifest).toMatchObject({ format: 'webpeft-trainer-checkpoint', version: 1, step: 3, epoch: 0.25, rng, weights: ['layer.weight', 'layer.bias'] });
      expect([...store.folders.get('ck')!.keys()].sort()).toEqual(['optimizer.safetensors', 'trainer_state.json', 'weights.safetensors']);
      const want = await snapshot(src);

      const dst = make(backend, 50);
      await steps(dst, 1, 900);
      manualSeed(999);
      const loaded = await loadCheckpoint(store, 'ck', { weights: weightsOf(dst), optimizer: dst.opt, scheduler: dst.sched });
      expect(loaded).toMatchObject({ step: 3, epoch: 0.25, dataPosition: { sampler: 12345 }, metadata: { run: 'test' } });
      expect(await snapshot(dst)).toEqual(want);
      dispose(src, dst);
    }
  });

  it('crc32 gives the standard check value', () => {
    // CRC-32/ISO-HDLC of the ASCII digits 1..9 is 0xCBF43926 (the catalogue's check value).
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
  });
});

describe('trainer checkpoint: a refused load changes nothing', () => {
  it('damaged files, bad manifest fields and mismatched runs each throw naming what is wrong', async () => {
    const backend = backendsUnderTest()[0];
    const store = memoryCheckpointStore();
    const src = make(backend, 1);
    await steps(src, 2, 100);
    await saveCheckpoint(store, 'ck', { weights: weightsOf(src), optimizer: src.opt, scheduler: src.sched, step: 2 });
    const dst = make(backend, 50);
    await steps(dst, 1, 900);
    setRngState({ seed: 31, offset: 77 });
    const before = await snapshot(dst);
    const target = { weights: weightsOf(dst), optimizer: dst.opt, scheduler: dst.sched };

    const cases: [string, (to: string) => void, RegExp][] = [
      ['no manifest', (to) => tamper(store, 'ck', to, () => {}, (n, b) => (n === CHECKPOINT_FILES.manifest ? undefined : b)), /no-manifest: no 'trainer_state.json', so not a complete trainer checkpoint/],
      ['bad JSON', (to) => tamper(store, 'ck', to, () => {}, (n, b) => (n === CHECKPOINT_FILES.manifest ? b.subarray(0, 20) : b)), /bad-JSON\/trainer_state.json: not valid JSON/],
      ['newer version', (to) => tamper(store, 'ck', to, (m) => (m.version = 2)), /'version' is 2; this reader knows versions up to 1/],
      ['negative step', (to) => tamper(store, 'ck', to, (m) => (m.step = -3)), /'step' must be a non-negative integer, got -3/],
      ['negative rng offset', (to) => tamper(store, 'ck', to, (m) => (m.rng.offset = -1)), /'rng': offset must be a non-negative safe integer, got -1/],
      ['fractional rng seed', (to) => tamper(store, 'ck', to, (m) => (m.rng.seed = 1.5)), /'rng': seed must be a non-negative safe integer, got 1.5/],
      ['huge rng offset', (to) => tamper(store, 'ck', to, (m) => (m.rng.offset = 2 ** 60)), /'rng': offset must be a non-negative safe integer, got 1152921504606847000/],
      ['NaN epoch (JSON null)', (to) => tamper(store, 'ck', to, (m) => (m.epoch = null)), /'epoch' must be a finite number >= 0, got null/],
      ['scheduler lastStep', (to) => tamper(store, 'ck', to, (m) => (m.scheduler.lastStep = -1)), /'scheduler' must be null or/],
      ['scheduler NaN base lr', (to) => tamper(store, 'ck', to, (m) => (m.scheduler.baseLrs = [null])), /LambdaLr.loadStateDict: baseLrs\[0\] must be a finite number >= 0, got null/],
      ['NaN lr in a group', (to) => tamper(store, 'ck', to, (m) => ((m.optimizer as { paramGroups: { lr: JsonValue }[] }).paramGroups[0].lr = null)), /AdamW.*lr/],
      ['flipped byte', (to) => tamper(store, 'ck', to, () => {}, (n, b) => (n === CHECKPOINT_FILES.weights ? (b[b.length - 3] ^= 1, b) : b)), /flipped-byte\/weights.safetensors: CRC-32 is \d+, the manifest records \d+/],
      ['truncated optimizer file', (to) => tamper(store, 'ck', to, () => {}, (n, b) => (n === CHECKPOINT_FILES.optimizer ? b.subarray(0, b.length - 8) : b)), /optimizer.safetensors: \d+ bytes, the manifest records \d+ \(an incomplete or replaced file\)/],
    ];
    for (const [label, make, pattern] of cases) {
      const dir = label.replace(/[^a-zA-Z]+/g, '-');
      make(dir);
      const err = await loadCheckpoint(store, dir, target).catch((e: unknown) => e);
      expect(err, label).toBeInstanceOf(Error);
      expect((err as Error).message, label).toMatch(pattern);
      expect(await snapshot(dst), `${label}: nothing changed`).toEqual(before);
    }
    await expect(loadCheckpoint(store, 'nowhere', target)).rejects.toThrow(/nowhere: no checkpoint there/);

    // Runs that do not match the checkpoint.
    const wide = tensor(randomArray(12, 3), [4, 3], { backend, requiresGrad: true });
    const extra = tensor(randomArray(2, 4), [2], { backend, requiresGrad: true });
    const mismatches: [string, Parameters<typeof loadCheckpoint>[2], RegExp][] = [
      ['shape', { ...target, weights: { 'layer.weight': wide, 'layer.bias': dst.b } }, /weights.safetensors: tensor 'layer.weight' is F32 \[3, 4\], this run's weight is F32 \[4, 3\]/],
      ['extra weight', { ...target, weights: { ...weightsOf(dst), 'layer.extra': extra } }, /weights do not match this run's \(missing 1 weight\(s\) of this run: layer.extra\)/],
      ['missing weight', { ...target, weights: { 'layer.weight': dst.w } }, /1 weight\(s\) this run does not have: layer.bias/],
      ['other optimizer', { ...target, optimizer: new SGD([{ params: [dst.w, dst.b], names: ['layer.weight', 'layer.bias'] }]) }, /state dict is for optimizer 'AdamW', this is SGD/],
      ['other names', { ...target, optimizer: new AdamW([{ params: [dst.w, dst.b], names: ['w', 'b'] }]) }, /has parameter 'layer.weight', which group 0 of this optimizer does not have/],
      ['no scheduler', { ...target, scheduler: null }, /has scheduler state, but this run has no scheduler/],
    ];
    for (const [label, objects, pattern] of mismatches) {
      await expect(loadCheckpoint(store, 'ck', objects), label).rejects.toThrow(pattern);
      expect(await snapshot(dst), `${label}: nothing changed`).toEqual(before);
    }
    expect(await bitsOf(wide)).toEqual(Array.from(new Uint32Array(randomArray(12, 3).buffer)));
    wide.dispose();
    extra.dispose();
    dispose(src, dst);
  });

  it('saving refuses an existing folder without overwrite, and values JSON cannot hold', async () => {
    const backend = backendsUnderTest()[0];
    const store = memoryCheckpointStore();
    const o = make(backend, 1);
    await steps(o, 1, 100);
    const state = { weights: weightsOf(o), optimizer: o.opt, scheduler: o.sched, step: 1 };
    await saveCheckpoint(store, 'ck', state);
    const first = store.folders.get('ck');
    const err = await saveCheckpoint(store, 'ck', { ...state, step: 2 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CheckpointError);
    expect((err as Error).message).toBe('saveCheckpoint ck: a checkpoint already exists there (pass overwrite to replace it)');
    expect(store.folders.get('ck')).toBe(first);
    await saveCheckpoint(store, 'ck', { ...state, step: 2 }, { overwrite: true });
    expect((await loadCheckpoint(store, 'ck', state)).step).toBe(2);
    await expect(saveCheckpoint(store, 'nan', { ...state, dataPosition: { position: NaN } })).rejects.toThrow(/saveCheckpoint nan: manifest.dataPosition.position is NaN, which JSON cannot hold/);
    await expect(saveCheckpoint(store, 'neg', { ...state, step: -1 })).rejects.toThrow(/step must be a non-negative integer, got -1/);
    expect([...store.folders.keys()]).toEqual(['ck']);
    dispose(o);
  });
});
