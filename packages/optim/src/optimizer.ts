import { type Backend, DTypeError, ShapeError, type Tensor, keep, tensor, withMemoryTag, zeros } from '@webpeft/tensor';
import { hasInPlaceKernel, runInPlace } from '@webpeft/tensor/kernel';
import { nonFiniteIndices } from './non-finite.js';
import type { UpdateItem } from './optimizer-ops.js';
import { registerOptimizerOps } from './register.js';
import type { UpdateRule } from './update-rule.js';
import type {
  BaseHyper,
  NonFiniteParam,
  OptimizerStateDict,
  ParamGroup,
  ParamGroupSpec,
  ParamState,
  ParamsInput,
  SavedBuffer,
  SavedGroup,
  StepReport,
} from './types.js';

/** Options shared by every optimizer. */
export interface OptimizerOptions {
  /**
   * Check gradients for NaN/infinity before updating and skip the whole step when any is
   * found (default true). The check reads one flag per parameter back from the device.
   */
  skipNonFinite?: boolean;
}

/** One parameter to update in a step. */
interface Entry {
  group: number;
  index: number;
  param: Tensor;
  grad: Tensor;
}

/**
 * Base of all optimizers: parameter groups with their own hyperparameters, explicit
 * per-parameter state, `zeroGrad`, a non-finite gradient check that skips the step,
 * state dicts that resume a run bit for bit, and the update as the in-place op
 * `OptimizerUpdate` on the parameters' backend (cpu loops, or one fused WebGPU kernel
 * over many parameters).
 *
 * Parameters are updated in place: the tensor objects and their storage stay the same.
 */
export abstract class Optimizer<H extends BaseHyper> {
  /** The parameter groups; schedulers and users may change hyperparameters between steps. */
  readonly paramGroups: ParamGroup<H>[] = [];
  /** State per parameter, created on the parameter's first update. */
  readonly state = new Map<Tensor, ParamState>();
  /** Whether `step()` checks gradients and skips non-finite steps. */
  skipNonFinite: boolean;
  /** Count of steps skipped because of non-finite gradients. */
  skippedSteps = 0;

  protected constructor(
    protected readonly rule: UpdateRule<H>,
    params: ParamsInput<H>,
    readonly defaults: H,
    options: OptimizerOptions = {},
  ) {
    this.skipNonFinite = options.skipNonFinite ?? true;
    const specs: readonly ParamGroupSpec<H>[] = isTensorList(params) ? [{ params } as ParamGroupSpec<H>] : params;
    if (specs.length === 0) throw new Error(`${rule.name}: no parameters given`);
    for (const spec of specs) this.addParamGroup(spec);
  }

  /** Checks one group's hyperparameters; throws naming the optimizer, group and field. */
  protected abstract validate(h: H, where: string): void;

  /** Adds a group (hyperparameters left out take the defaults). */
  addParamGroup(spec: ParamGroupSpec<H>): void {
    const g = this.paramGroups.length;
    const { params, names, ...hyper } = spec;
    const group = { ...this.defaults, ...hyper, params: [...params], names: [] as string[] } as ParamGroup<H>;
    if (names && names.length !== params.length) {
      throw new Error(`${this.rule.name}: group ${g} has ${params.length} params but ${names.length} names`);
    }
    const seen = new Set(this.paramGroups.flatMap((x) => x.params));
    params.forEach((p, i) => {
      if (seen.has(p)) throw new Error(`${this.rule.name}: parameter ${names?.[i] ?? `group ${g} param ${i}`} appears in more than one place`);
      seen.add(p);
      if (p.dtype !== 'f32' && p.dtype !== 'f64') {
        throw new DTypeError(`${this.rule.name}: parameter ${names?.[i] ?? i} of group ${g} is ${p.dtype}; optimizers update f32 (or f64 on cpu) parameters`);
      }
      group.names.push(names?.[i] ?? `group ${g} param ${i}`);
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
   * Applies one update to every parameter that has a gradient. When `skipNonFinite` is
   * on and any gradient holds a NaN or infinity, nothing changes and the report names
   * the offending parameters. Await it before changing gradients or hyperparameters.
   */
  async step(): Promise<StepReport> {
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
          `${this.rule.name}: gradient of ${this.nameOf(e)} is ${e.grad.dtype} [${e.grad.shape}] on ${e.grad.backend.name}, parameter is ${e.param.dtype} [${e.param.shape}] on ${e.param.backend.name}`,
        );
      }
    }
    registerOptimizerOps();
    // Refuse before anything changes, so a step is never half-applied across backends.
    const unsupported = entries.find((e) => !hasInPlaceKernel('OptimizerUpdate', e.param.backend.name));
    if (unsupported) {
      throw new Error(`${this.rule.name}: parameter ${this.nameOf(unsupported)} is on backend '${unsupported.param.backend.name}', which has no optimizer update kernel`);
    }

    if (this.skipNonFinite) {
      const bad = (await nonFiniteIndices(entries.map((e) => e.grad))).map((i) => this.describe(entries[i]));
      if (bad.length > 0) {
        this.skippedSteps++;
        const list = bad.map((b) => `${b.name} (group ${b.group} param ${b.index})`).join(', ');
        return { skipped: true, updated: 0, nonFinite: bad, message: `${this.rule.name}: skipped step: non-finite gradients in ${list}` };
      }
    }

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
    return { skipped: false, updated: entries.length, nonFinite: [], message: `${this.rule.name}: updated ${entries.length} parameters` };
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
      throw new Error(`${this.rule.name}: state of a parameter has no '${missing}' buffer; hyperparameters changed after its first step (e.g. amsgrad turned on)`);
    }
    return st;
  }

  private describe(e: Entry): NonFiniteParam {
    return { group: e.group, index: e.index, name: this.paramGroups[e.group].names[e.index] };
  }

  private nameOf(e: Entry): string {
    return this.paramGroups[e.group].names[e.index];
  }

  /**
   * A snapshot of hyperparameters and state with host copies of every state tensor
   * (reads back from the device), to save and later resume the run exactly.
   */
  async stateDict(): Promise<OptimizerStateDict> {
    const state: OptimizerStateDict['state'] = {};
    const params = this.params;
    for (let i = 0; i < params.length; i++) {
      const st = this.state.get(params[i]);
      if (!st) continue;
      const buffers: Record<string, SavedBuffer> = {};
      for (const [n, t] of Object.entries(st.buffers)) {
        buffers[n] = { shape: [...t.shape], dtype: t.dtype as 'f32' | 'f64', data: (await t.data()) as Float32Array | Float64Array };
      }
      state[i] = { step: st.step, buffers };
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
   * parameters (same group structure and shapes). Throws naming the first key that
   * does not match; nothing changes then.
   */
  loadStateDict(sd: OptimizerStateDict): void {
    const name = this.rule.name;
    if (sd.optimizer !== name) throw new Error(`${name}.loadStateDict: state dict is for optimizer '${sd.optimizer}'`);
    if (sd.paramGroups.length !== this.paramGroups.length) {
      throw new Error(`${name}.loadStateDict: paramGroups has ${sd.paramGroups.length} groups, this optimizer has ${this.paramGroups.length}`);
    }
    const params = this.params;
    const names = this.paramGroups.flatMap((g) => g.names);
    const hypers: H[] = [];
    sd.paramGroups.forEach((sg, g) => {
      const own = this.paramGroups[g];
      if (sg.params.length !== own.params.length) {
        throw new Error(`${name}.loadStateDict: paramGroups[${g}].params has ${sg.params.length} entries, this group has ${own.params.length}`);
      }
      const { params: _p, names: _n, ...hyper } = sg;
      const h = { ...own, ...structuredClone(hyper) } as unknown as H;
      this.validate(h, `paramGroups[${g}]`);
      hypers.push(h);
    });
    const groupOf = params.map((_, i) => sd.paramGroups.findIndex((sg) => sg.params.includes(i)));
    const restored = new Map<Tensor, ParamState>();
    for (const [key, saved] of Object.entries(sd.state)) {
      const i = Number(key);
      const p = params[i];
      if (!p || groupOf[i] < 0) throw new Error(`${name}.loadStateDict: state[${key}] names no parameter (there are ${params.length})`);
      const expected = this.rule.stateNames(hypers[groupOf[i]]);
      const got = Object.keys(saved.buffers);
      if (expected.length !== got.length || expected.some((n) => !got.includes(n))) {
        throw new Error(`${name}.loadStateDict: state[${key}] has buffers [${got}], expected [${expected}]`);
      }
      if (!Number.isInteger(saved.step) || saved.step < 0) throw new Error(`${name}.loadStateDict: state[${key}].step is ${saved.step}`);
      for (const n of expected) {
        const b = saved.buffers[n];
        if (b.shape.join(',') !== p.shape.join(',') || b.data.length !== p.size || b.dtype !== p.dtype) {
          throw new ShapeError(
            `${name}.loadStateDict: state[${key}].${n} is ${b.dtype} [${b.shape}] (${b.data.length} values), parameter ${names[i]} is ${p.dtype} [${p.shape}]`,
          );
        }
      }
      restored.set(p, { step: saved.step, buffers: {} });
    }
    // Validated: now replace state and hyperparameters.
    this.disposeState();
    for (const [p, st] of restored) {
      const saved = sd.state[params.indexOf(p)];
      for (const [n, b] of Object.entries(saved.buffers)) {
        const data = b.dtype === 'f64' ? Float64Array.from(b.data) : Float32Array.from(b.data);
        st.buffers[n] = keep(withMemoryTag('optimizer', () => tensor(data, p.shape, { dtype: b.dtype, backend: p.backend.name })));
      }
      this.state.set(p, st);
    }
    hypers.forEach((h, g) => {
      const own = this.paramGroups[g];
      const { params: _p, names: _n, ...hyper } = h as ParamGroup<H>;
      Object.assign(own, hyper);
    });
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
