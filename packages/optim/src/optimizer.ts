import { type Backend, DTypeError, ShapeError, type Tensor, keep, tensor, withMemoryTag, zeros } from '@webpeft/tensor';
import { hasInPlaceKernel, markBusy, runInPlace } from '@webpeft/tensor/kernel';
import { NonFiniteGradientError, StepInFlightError, describeParams } from './errors.js';
import { nonFiniteIndices } from './non-finite.js';
import { type NonFinitePolicy, type OptimizerOptions, checkNonNegative, resolveOptions } from './options.js';
import { checkSavedState, matchSavedParams } from './state-load.js';
import type { UpdateItem } from './optimizer-ops.js';
import { registerOptimizerOps } from './register.js';
import type { UpdateRule } from './update-rule.js';
import type {
  BaseHyper,
  BufferLayout,
  NonFiniteParam,
  OptimizerStateDict,
  ParamGroup,
  ParamGroupSpec,
  ParamState,
  ParamsInput,
  SavedBuffer,
  SavedGroup,
  SavedParamState,
  StepReport,
} from './types.js';

export type { OptimizerOptions } from './options.js';

/** One parameter to update in a step. */
interface Entry {
  group: number;
  index: number;
  param: Tensor;
  grad: Tensor;
}

/**
 * Base of all optimizers: parameter groups with their own hyperparameters, explicit
 * per-parameter state, `zeroGrad`, a non-finite gradient check with a policy
 * (`nonFinite`), hyperparameters checked at every step, a guard against overlapping
 * steps, state dicts keyed by parameter name that resume a run bit for bit, and the
 * update as the in-place op `OptimizerUpdate` on the parameters' backend (cpu loops, or
 * one fused WebGPU kernel over many parameters).
 *
 * Parameters are updated in place: the tensor objects and their storage stay the same.
 * Subclasses with their own state storage (8-bit, paged) override `runStep` and the
 * state hooks `stateLayout`, `saveParamState` and `restoreParamState`.
 */
export abstract class Optimizer<H extends BaseHyper> {
  /** The parameter groups; schedulers and users may change hyperparameters between steps (checked at each step). */
  readonly paramGroups: ParamGroup<H>[] = [];
  /** State per parameter, created on the parameter's first update. */
  readonly state = new Map<Tensor, ParamState>();
  /** Whether `step()` checks gradients for NaN/infinity (then `nonFinite` decides what happens). */
  skipNonFinite: boolean;
  /** What a step with non-finite gradients does: skip, skip and warn, or throw. */
  nonFinite: NonFinitePolicy;
  /** Consecutive skipped steps after which the `'warn'` policy warns (and every as many more). */
  warnAfterSkips: number;
  /** Count of steps skipped because of non-finite gradients. */
  skippedSteps = 0;
  /** Skipped steps since the last applied one. */
  consecutiveSkips = 0;
  /** The optimizer's name in errors and reports (the update rule's name unless a subclass sets another). */
  readonly optimizerName: string;
  private readonly onWarning: (message: string) => void;
  private inFlight = false;

  protected constructor(
    protected readonly rule: UpdateRule<H>,
    params: ParamsInput<H>,
    readonly defaults: H,
    options: OptimizerOptions = {},
    optimizerName: string = rule.name,
  ) {
    this.optimizerName = optimizerName;
    const o = resolveOptions(optimizerName, options);
    this.skipNonFinite = o.skipNonFinite;
    this.nonFinite = o.nonFinite;
    this.warnAfterSkips = o.warnAfterSkips;
    this.onWarning = o.onWarning;
    const specs: readonly ParamGroupSpec<H>[] = isTensorList(params) ? [{ params } as ParamGroupSpec<H>] : params;
    if (specs.length === 0) throw new Error(`${optimizerName}: no parameters given`);
    for (const spec of specs) this.addParamGroup(spec);
  }

  /** Checks one group's hyperparameters; throws a RangeError naming the optimizer, group and field. */
  protected abstract validate(h: H, where: string): void;

  /** Adds a group (hyperparameters left out take the defaults). Names must be unique over all groups. */
  addParamGroup(spec: ParamGroupSpec<H>): void {
    const owner = this.optimizerName;
    const g = this.paramGroups.length;
    const { params, names, ...hyper } = spec;
    const group = { ...this.defaults, ...hyper, params: [...params], names: [] as string[] } as ParamGroup<H>;
    if (names && names.length !== params.length) {
      throw new Error(`${owner}: group ${g} has ${params.length} params but ${names.length} names`);
    }
    const seen = new Set(this.paramGroups.flatMap((x) => x.params));
    const seenNames = new Set(this.paramGroups.flatMap((x) => x.names));
    params.forEach((p, i) => {
      const name = names?.[i] ?? `group ${g} param ${i}`;
      if (seen.has(p)) throw new Error(`${owner}: parameter ${name} appears in more than one place`);
      if (seenNames.has(name) || group.names.includes(name)) throw new Error(`${owner}: parameter name '${name}' is given twice (names key the state dict)`);
      seen.add(p);
      if (p.dtype !== 'f32' && p.dtype !== 'f64') {
        throw new DTypeError(`${owner}: parameter ${name} of group ${g} is ${p.dtype}; optimizers update f32 (or f64 on cpu) parameters`);
      }
      group.names.push(name);
    });
    this.validate(group, `group ${g}`);
    this.paramGroups.push(group);
  }

  /** All parameters, in group order (the flat indices used by state dicts). */
  get params(): Tensor[] {
    return this.paramGroups.flatMap((g) => g.params);
  }

  /** Drops every parameter's gradient (PyTorch's `zero_grad(set_to_none=True)`). */
  zeroGrad(): void {
    for (const p of this.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /**
   * Applies one update to every parameter that has a gradient. Before anything changes
   * it checks every group's hyperparameters (a NaN or negative lr set by hand or by a
   * scheduler's state is a RangeError naming the optimizer, group and field) and, when
   * `skipNonFinite` is on, the gradients: with a NaN or infinity nothing changes and
   * the `nonFinite` policy skips (the report names the parameters), warns after
   * `warnAfterSkips` consecutive skips, or throws a `NonFiniteGradientError`.
   *
   * Await it before changing gradients or hyperparameters, and before the next step:
   * a call while a step is in flight rejects with a `StepInFlightError` and changes
   * nothing, and an op that reads one of the optimizer's parameters before the step
   * resolves (a forward overlapping it) throws a `TensorBusyError` naming the op, the
   * parameter and the optimizer.
   */
  async step(): Promise<StepReport> {
    this.assertIdle('step');
    // Until the step resolves, an op reading one of its parameters (a forward overlapping
    // the step) throws a TensorBusyError instead of reading old or half-updated values.
    const release = markBusy(this.params, `${this.optimizerName}.step()`);
    this.inFlight = true;
    try {
      this.paramGroups.forEach((g, gi) => this.validate(g, `group ${gi}`));
      return await this.runStep();
    } finally {
      this.inFlight = false;
      release();
    }
  }

  /** Throws a `StepInFlightError` when a step is in flight. */
  protected assertIdle(call: string): void {
    if (this.inFlight) throw new StepInFlightError(this.optimizerName, call);
  }

  /**
   * The gradient check and policy: resolves to a skip report when some gradient holds a
   * NaN or infinity (counting the skip, warning per policy), throws under `'throw'`,
   * and resolves to null (resetting the consecutive count) when all are finite or the
   * check is off. Used by `runStep` and by subclasses that update parameters themselves.
   */
  async screenGradients(entries: readonly { group: number; index: number; grad: Tensor }[]): Promise<StepReport | null> {
    if (!this.skipNonFinite) return null;
    const bad: NonFiniteParam[] = (await nonFiniteIndices(entries.map((e) => e.grad))).map((i) => {
      const e = entries[i];
      return { group: e.group, index: e.index, name: this.paramGroups[e.group].names[e.index] };
    });
    if (bad.length === 0) {
      this.consecutiveSkips = 0;
      return null;
    }
    if (this.nonFinite === 'throw') throw new NonFiniteGradientError(this.optimizerName, bad);
    this.skippedSteps++;
    this.consecutiveSkips++;
    const list = describeParams(bad);
    if (this.nonFinite === 'warn' && this.consecutiveSkips % this.warnAfterSkips === 0) {
      this.onWarning(`${this.optimizerName}: ${this.consecutiveSkips} consecutive steps skipped for non-finite gradients, last in ${list}`);
    }
    return { skipped: true, updated: 0, nonFinite: bad, message: `${this.optimizerName}: skipped step: non-finite gradients in ${list}` };
  }

  /** The step itself, after the in-flight guard and the hyperparameter check. */
  protected async runStep(): Promise<StepReport> {
    const owner = this.optimizerName;
    const entries: Entry[] = [];
    this.paramGroups.forEach((g, gi) =>
      g.params.forEach((param, index) => {
        if (param.grad) entries.push({ group: gi, index, param, grad: param.grad });
      }),
    );
    // Hyperparameters are read now, so a scheduler stepping during the await has no effect on this step.
    const hypers = this.paramGroups.map((g) => ({ ...g }));
    for (const e of entries) this.stateOf(e.param, hypers[e.group]);
    for (const e of entries) {
      if (e.grad.backend !== e.param.backend || e.grad.size !== e.param.size || e.grad.dtype !== e.param.dtype) {
        throw new ShapeError(
          `${owner}: gradient of ${this.nameOf(e)} is ${e.grad.dtype} [${e.grad.shape}] on ${e.grad.backend.name}, parameter is ${e.param.dtype} [${e.param.shape}] on ${e.param.backend.name}`,
        );
      }
    }
    registerOptimizerOps();
    // Refuse before anything changes, so a step is never half-applied across backends.
    const unsupported = entries.find((e) => !hasInPlaceKernel('OptimizerUpdate', e.param.backend.name));
    if (unsupported) {
      throw new Error(`${owner}: parameter ${this.nameOf(unsupported)} is on backend '${unsupported.param.backend.name}', which has no optimizer update kernel`);
    }

    const skipped = await this.screenGradients(entries);
    if (skipped) return skipped;

    // One `OptimizerUpdate` per (backend, group, step count): items of one update share their scalars.
    const updates = new Map<string, { backend: Backend; group: number; step: number; items: UpdateItem[] }>();
    const backendIds = new Map<Backend, number>();
    for (const e of entries) {
      const st = this.state.get(e.param)!;
      const backend = e.param.backend;
      if (!backendIds.has(backend)) backendIds.set(backend, backendIds.size);
      const key = `${backendIds.get(backend)}/${e.group}/${st.step}`;
      let u = updates.get(key);
      if (!u) updates.set(key, (u = { backend, group: e.group, step: st.step + 1, items: [] }));
      u.items.push({ param: e.param, grad: e.grad, buffers: st.buffers });
    }
    for (const u of updates.values()) {
      const h = hypers[u.group];
      runInPlace('OptimizerUpdate', { rule: this.rule, hyper: h, scalars: this.rule.scalars(h, u.step), items: u.items }, u.backend);
      for (const it of u.items) this.state.get(it.param)!.step++;
    }
    return { skipped: false, updated: entries.length, nonFinite: [], message: `${owner}: updated ${entries.length} parameters` };
  }

  /** The state of `param`, created (zeros, tagged 'optimizer') on first use. */
  protected stateOf(param: Tensor, h: H): ParamState {
    let st = this.state.get(param);
    if (!st) {
      const buffers: Record<string, Tensor> = {};
      for (const n of this.rule.stateNames(h)) {
        buffers[n] = keep(withMemoryTag('optimizer', () => zeros(param.shape, { dtype: param.dtype, backend: param.backend.name })));
      }
      st = { step: 0, buffers };
      this.state.set(param, st);
    }
    const missing = this.rule.stateNames(h).find((n) => !st.buffers[n]);
    if (missing) {
      throw new Error(`${this.optimizerName}: state of a parameter has no '${missing}' buffer; hyperparameters changed after its first step (e.g. amsgrad turned on)`);
    }
    return st;
  }

  private nameOf(e: Entry): string {
    return this.paramGroups[e.group].names[e.index];
  }

  /** The buffers (name -> shape, dtype) a saved state of `param` must have under hyperparameters `h`. */
  protected stateLayout(param: Tensor, h: H): Record<string, BufferLayout> {
    return Object.fromEntries(this.rule.stateNames(h).map((n) => [n, { shape: [...param.shape], dtype: param.dtype as 'f32' | 'f64' }]));
  }

  /** Host copy of `param`'s state, or null when it has none yet (reads back from the device). */
  protected async saveParamState(param: Tensor): Promise<SavedParamState | null> {
    const st = this.state.get(param);
    if (!st) return null;
    const buffers: Record<string, SavedBuffer> = {};
    for (const [n, t] of Object.entries(st.buffers)) {
      buffers[n] = { shape: [...t.shape], dtype: t.dtype as 'f32' | 'f64', data: (await t.data()) as Float32Array | Float64Array };
    }
    return { step: st.step, buffers };
  }

  /** Installs a checked saved state on `param` (its buffers match `stateLayout`). */
  protected restoreParamState(param: Tensor, saved: SavedParamState): void {
    const buffers: Record<string, Tensor> = {};
    for (const [n, b] of Object.entries(saved.buffers)) {
      const data = b.dtype === 'f64' ? Float64Array.from(b.data) : Float32Array.from(b.data);
      buffers[n] = keep(withMemoryTag('optimizer', () => tensor(data, param.shape, { dtype: b.dtype, backend: param.backend.name })));
    }
    this.state.set(param, { step: saved.step, buffers });
  }

  /**
   * A snapshot of hyperparameters and state with host copies of every state tensor
   * (reads back from the device), to save and later resume the run exactly. Groups
   * carry their parameters' names, which key the state on load.
   */
  async stateDict(): Promise<OptimizerStateDict> {
    this.assertIdle('stateDict');
    const state: OptimizerStateDict['state'] = {};
    const params = this.params;
    for (let i = 0; i < params.length; i++) {
      const saved = await this.saveParamState(params[i]);
      if (saved) state[i] = saved;
    }
    let offset = 0;
    const paramGroups = this.paramGroups.map((g) => {
      const { params: ps, names, ...hyper } = g;
      const saved: SavedGroup = { ...structuredClone(hyper), params: ps.map((_, j) => offset + j), names: [...names] };
      offset += ps.length;
      return saved;
    });
    return { optimizer: this.rule.name, state, paramGroups };
  }

  /**
   * Restores hyperparameters and state saved by `stateDict()` onto this optimizer's
   * parameters, matched by name within each group (so the order may differ). Checks
   * everything first: optimizer type, group count, names, hyperparameters, step
   * counts, buffer names, shapes and dtypes; throws naming the first mismatch and
   * changes nothing then.
   */
  loadStateDict(sd: OptimizerStateDict): void {
    this.assertIdle('loadStateDict');
    const { hypers, restored } = this.checkLoad(sd);
    // Checked: now replace state and hyperparameters.
    this.disposeState();
    for (const [p, saved] of restored) this.restoreParamState(p, saved);
    hypers.forEach((h, g) => {
      const { params: _p, names: _n, ...hyper } = h as ParamGroup<H>;
      Object.assign(this.paramGroups[g], hyper);
    });
  }

  /**
   * Runs every check of {@link loadStateDict} on `sd` and changes nothing: throws naming
   * the first mismatch, as `loadStateDict` would. A loader that restores several
   * objects (model, optimizer, scheduler) calls it before mutating any of them.
   */
  checkStateDict(sd: OptimizerStateDict): void {
    this.checkLoad(sd);
  }

  private checkLoad(sd: OptimizerStateDict): { hypers: H[]; restored: [Tensor, SavedParamState][] } {
    const owner = this.optimizerName;
    if (sd?.optimizer !== this.rule.name) throw new Error(`${owner}.loadStateDict: state dict is for optimizer '${String(sd?.optimizer)}', this is ${this.rule.name}`);
    const bySaved = matchSavedParams(owner, sd, this.paramGroups);
    const hypers: H[] = sd.paramGroups.map((sg, g) => {
      const { params: _p, names: _n, ...hyper } = sg;
      const h = { ...this.paramGroups[g], ...structuredClone(hyper) } as unknown as H;
      this.validate(h, `paramGroups[${g}]`);
      const initialLr = (h as ParamGroup<H>).initialLr;
      if (initialLr !== undefined) checkNonNegative(owner, `paramGroups[${g}]`, 'initialLr', initialLr);
      return h;
    });
    const restored: [Tensor, SavedParamState][] = [];
    for (const [key, saved] of Object.entries(sd.state)) {
      const own = bySaved.get(Number(key))!;
      checkSavedState(owner, key, own.name, saved, this.stateLayout(own.param, hypers[own.group]));
      restored.push([own.param, saved]);
    }
    return { hypers, restored };
  }

  /** Frees every state tensor (the optimizer starts afresh at its next step). */
  disposeState(): void {
    for (const st of this.state.values()) for (const t of Object.values(st.buffers)) t.dispose();
    this.state.clear();
  }
}

function isTensorList<H extends BaseHyper>(params: ParamsInput<H>): params is readonly Tensor[] {
  return params.length > 0 && !('params' in (params[0] as object));
}
