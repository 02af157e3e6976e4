import type { Backend, BackendMemory, BackendName, MemoryTag } from './backend.js';
import { MEMORY_TAGS, backendSupports, toSnapshot } from './backend.js';
import { BYTES_PER_ELEMENT, type DType, isFloat } from './dtype.js';
import { ChunkedTensorError, DTypeError, OutOfMemoryError, fmtShape } from './errors.js';
import type { OpAttrs, OpName } from './op-names.js';
import {
  type GradientSpec,
  type InPlaceArgsOf,
  type InPlaceOpName,
  type InPlaceResultOf,
  getComposite,
  getGradient,
  getInPlaceKernel,
  getKernel,
  hasInPlaceKernel,
  kernelTakesChunks,
} from './registry.js';
import { GradNode } from './autograd/grad-node.js';
import type { CheckpointProbe } from './autograd/checkpoint-probe.js';
import type { ProfileRecorder } from './profile-recorder.js';
import { Tensor } from './tensor.js';
import { throwBusy } from './busy.js';
import { installTensorRuntime } from './tensor-runtime.js';
import { shapesEqual, sizeOf } from './shape.js';

/** Memory report returned by `memory()`. */
export interface MemoryInfo extends BackendMemory {
  /** Live tensor handles (including ones saved for backward). */
  liveTensors: number;
}

/**
 * Global runtime state: registered backends, the default one, `tidy` scopes, grad
 * mode, the memory tag of new tensors and the live tensor count.
 */
class Engine {
  private backends = new Map<BackendName, Backend>();
  private defaultBackend: Backend | null = null;
  private scopes: Set<Tensor>[] = [];
  gradEnabled = true;
  currentTag: MemoryTag = 'activations';
  liveTensors = 0;
  /** The running `profile()`'s recorder; null (the usual case) costs one check per op. */
  profiler: ProfileRecorder | null = null;
  /**
   * Set while a `checkpoint()`ed function runs its first forward: ops are checked and
   * not recorded (only the checkpoint's inputs are kept). Null otherwise: one check per op.
   */
  checkpointProbe: CheckpointProbe | null = null;

  registerBackend(backend: Backend, makeDefault: boolean): void {
    this.backends.get(backend.name)?.dispose();
    this.backends.set(backend.name, backend);
    const replacesDefault = this.defaultBackend?.name === backend.name;
    if (makeDefault || replacesDefault || (!this.defaultBackend && backend.name !== 'meta')) this.defaultBackend = backend;
  }

  getBackend(name?: BackendName): Backend {
    const b = name ? this.backends.get(name) : this.defaultBackend;
    if (!b) {
      throw new Error(name ? `backend '${name}' is not initialised; call init({ backend: '${name}' })` : 'no backend is initialised; call init() first');
    }
    return b;
  }

  hasBackend(name: BackendName): boolean {
    return this.backends.has(name);
  }

  setDefaultBackend(name: BackendName): void {
    this.defaultBackend = this.getBackend(name);
  }

  // ---- lifetimes -------------------------------------------------------------

  onTensorCreated(t: Tensor): void {
    this.liveTensors++;
    this.scopes[this.scopes.length - 1]?.add(t);
  }

  onTensorDisposed(t: Tensor): void {
    const s = t.storage!;
    t.storage = null;
    this.liveTensors--;
    if (--s.refs === 0) s.backend.release(s);
    if (t.node) {
      t.node.release();
      t.node = null;
    }
    if (t.grad) {
      t.grad.dispose();
      t.grad = null;
    }
  }

  /** Allocates an output tensor of `shape`/`dtype` on `backend` with the current tag. */
  makeTensor(backend: Backend, shape: readonly number[], dtype: DType, op: string): Tensor {
    if (!backendSupports(backend, dtype)) {
      throw new DTypeError(`${op}: backend '${backend.name}' cannot hold dtype ${dtype}`);
    }
    const bytes = sizeOf(shape) * BYTES_PER_ELEMENT[dtype];
    if (!Number.isSafeInteger(bytes)) {
      throw new OutOfMemoryError(`${op}: shape ${fmtShape(shape)} is too large`, toSnapshot(backend.memory(), this.liveTensors));
    }
    const storage = backend.allocate(bytes, this.currentTag, { rowElements: shape.length > 0 ? shape[shape.length - 1] : 1, elementBytes: BYTES_PER_ELEMENT[dtype] });
    return new Tensor(storage, shape, dtype);
  }

  /** A new tensor handle sharing `t`'s storage with another shape (no copy). */
  shareStorage(t: Tensor, shape: readonly number[], op: string): Tensor {
    const s = t.liveStorage(op);
    s.refs++;
    return new Tensor(s, shape, t.dtype);
  }

  startScope(): void {
    this.scopes.push(new Set());
  }

  /** Ends the innermost scope, disposing its tensors except `result`'s, which move to the parent scope. */
  endScope(result: unknown): void {
    const scope = this.scopes.pop();
    if (!scope) throw new Error('endScope: no scope is open');
    const keepSet = new Set<Tensor>();
    collectTensors(result, keepSet);
    const parent = this.scopes[this.scopes.length - 1];
    for (const t of scope) {
      if (keepSet.has(t)) parent?.add(t);
      else if (!t.kept) t.dispose();
    }
  }

  keep(t: Tensor): void {
    t.kept = true;
    for (const s of this.scopes) s.delete(t);
  }

  // ---- ops ---------------------------------------------------------------------

  /** The backend that `inputs` share (or `backend`, or the default), checking that they are alive. */
  private backendOf(op: string, inputs: readonly Tensor[], backend?: Backend): Backend {
    let b = backend;
    for (const t of inputs) {
      const s = t.liveStorage(op);
      if (!b) b = s.backend;
      else if (s.backend !== b) {
        throw new Error(`${op}: inputs live on different backends ('${b.name}' and '${s.backend.name}'); move them with toBackend()`);
      }
    }
    return b ?? this.getBackend();
  }

  /**
   * Runs op `op` on `inputs` (all on one backend) and records it for autograd. Where
   * the backend has no kernel for a fused op, its composite definition runs instead
   * (recorded through the primitives it uses).
   */
  runOp<K extends OpName>(op: K, inputs: readonly Tensor[], attrs: OpAttrs[K], backend?: Backend): Tensor {
    // A tensor an in-flight update owns (an optimizer step not yet awaited) must not be read.
    for (let i = 0; i < inputs.length; i++) if (inputs[i].busyWith !== null) throwBusy(op, inputs[i]);
    const p = this.profiler;
    if (p === null) return this.runOpNow(op, inputs, attrs, backend);
    p.enter(op);
    try {
      return this.runOpNow(op, inputs, attrs, backend);
    } finally {
      p.exit();
    }
  }

  private runOpNow<K extends OpName>(op: K, inputs: readonly Tensor[], attrs: OpAttrs[K], backend?: Backend): Tensor {
    const b = this.backendOf(op, inputs, backend);
    const kernel = getKernel(op, b.name);
    if (!kernel) return this.compositeNow(op, inputs, attrs, b);
    refuseChunkedInputs(op, inputs, b);
    const probe = this.checkpointProbe;
    // Checked before the kernel runs, so that a refused input leaves nothing allocated.
    if (probe !== null && this.gradEnabled) probe.see(op, inputs);
    const out = kernel(inputs, attrs, b.kernelContext);
    if (probe === null && this.gradEnabled && inputs.some((t) => t.requiresGrad)) this.record(op, inputs, attrs, out);
    return out;
  }

  /** Runs the kernel of `op` on `backend` with no autograd recording (kernels composing kernels). */
  runKernel<K extends OpName>(op: K, inputs: readonly Tensor[], attrs: OpAttrs[K], backend: Backend): Tensor {
    const p = this.profiler;
    if (p === null) return this.runKernelNow(op, inputs, attrs, backend);
    p.enter(op);
    try {
      return this.runKernelNow(op, inputs, attrs, backend);
    } finally {
      p.exit();
    }
  }

  private runKernelNow<K extends OpName>(op: K, inputs: readonly Tensor[], attrs: OpAttrs[K], backend: Backend): Tensor {
    const b = this.backendOf(op, inputs, backend);
    const kernel = getKernel(op, b.name);
    if (kernel) {
      refuseChunkedInputs(op, inputs, b);
      return kernel(inputs, attrs, b.kernelContext);
    }
    const prev = this.gradEnabled;
    this.gradEnabled = false;
    try {
      return this.compositeNow(op, inputs, attrs, b);
    } finally {
      this.gradEnabled = prev;
    }
  }

  /** Runs the composite definition of fused op `op` (the oracle of its kernels). */
  runComposite<K extends OpName>(op: K, inputs: readonly Tensor[], attrs: OpAttrs[K], backend?: Backend): Tensor {
    const p = this.profiler;
    if (p === null) return this.compositeNow(op, inputs, attrs, backend);
    p.enter(op);
    try {
      return this.compositeNow(op, inputs, attrs, backend);
    } finally {
      p.exit();
    }
  }

  private compositeNow<K extends OpName>(op: K, inputs: readonly Tensor[], attrs: OpAttrs[K], backend?: Backend): Tensor {
    const b = this.backendOf(op, inputs, backend);
    const composite = getComposite(op);
    if (!composite) throw new Error(`${op}: no kernel is registered for backend '${b.name}', and the op has no composite definition`);
    // A scope frees the composite's intermediates (the graph keeps what backward needs);
    // its new tensors (scalars, creation ops) go on the inputs' backend.
    const prev = this.defaultBackend;
    this.defaultBackend = b;
    this.startScope();
    let out: Tensor | undefined;
    try {
      out = composite(inputs, attrs);
      return out;
    } finally {
      this.endScope(out);
      this.defaultBackend = prev;
    }
  }

  /**
   * Runs in-place op `op` on `backend`: a kernel that writes into existing tensors
   * (optimizer updates, paged state copies) and is never recorded for autograd.
   */
  runInPlace<K extends InPlaceOpName>(op: K, args: InPlaceArgsOf<K>, backend: Backend): InPlaceResultOf<K> {
    const kernel = getInPlaceKernel(op, backend.name);
    if (!kernel) throw new Error(`${op}: no in-place kernel is registered for backend '${backend.name}'`);
    const p = this.profiler;
    if (p === null) return kernel(args, backend.kernelContext);
    p.enter(op);
    try {
      return kernel(args, backend.kernelContext);
    } finally {
      p.exit();
    }
  }

  /** Submits the pending work of every backend (a profile's boundaries). */
  flushAll(): void {
    for (const b of this.backends.values()) b.flush();
  }

  private record<K extends OpName>(op: K, inputs: readonly Tensor[], attrs: OpAttrs[K], out: Tensor): void {
    const spec = getGradient(op);
    if (!spec) return; // not differentiable (comparisons, argmax, casts to ints...)
    if (!isFloat(out.dtype)) return;
    this.recordNode(op, inputs, attrs, spec, out);
  }

  /**
   * Puts a node on the tape that makes `out` the result of `inputs` through `spec`: a
   * registered op's gradient, or one built at the call (a `checkpoint()`'s recompute).
   */
  recordNode(op: string, inputs: readonly Tensor[], attrs: OpAttrs[OpName], spec: GradientSpec, out: Tensor): void {
    const save = (t: Tensor) => {
      const s = t.liveStorage(op);
      s.refs++;
      const saved = new Tensor(s, t.shape, t.dtype);
      // Saved tensors belong to the node, never to a scope.
      this.keep(saved);
      return saved;
    };
    const inputNodes = inputs.map((t) => (t.requiresGrad ? t.node : null));
    for (const n of inputNodes) if (n) n.refs++;
    const node = new GradNode(
      op,
      attrs,
      spec,
      inputs.map((t) => (t.requiresGrad && !t.node ? t : null)),
      inputNodes,
      inputs.map((t) => t.requiresGrad),
      inputs.map((t) => t.shape),
      inputs.map((t) => t.dtype),
      spec.saveInputs === true ? inputs.map(save) : spec.saveInputs ? inputs.slice(0, spec.saveInputs).map(save) : [],
      spec.saveOutput ? save(out) : null,
    );
    out.node = node;
    out.requiresGrad = true;
  }

  // ---- autograd ----------------------------------------------------------------

  backward(root: Tensor, gradient: Tensor | undefined, retainGraph: boolean): void {
    root.liveStorage('backward');
    if (!root.requiresGrad) throw new Error(`backward: tensor ${fmtShape(root.shape)} does not require grad`);
    if (!gradient && root.size !== 1) {
      throw new Error(`backward: tensor ${fmtShape(root.shape)} is not a scalar; pass a gradient of its shape`);
    }
    if (gradient && !shapesEqual(gradient.shape, root.shape)) {
      throw new Error(`backward: gradient shape ${fmtShape(gradient.shape)} differs from tensor shape ${fmtShape(root.shape)}`);
    }
    const prevGrad = this.gradEnabled;
    this.gradEnabled = false;
    try {
      const seed = gradient ?? this.runOp('Fill', [], { shape: [...root.shape], value: 1, dtype: root.dtype }, root.backend);
      if (!root.node) {
        this.accumulateLeaf(root, seed === gradient ? this.copy(seed) : seed);
        return;
      }
      const order = topoOrder(root.node);
      const grads = new Map<GradNode, Tensor>([[root.node, seed === gradient ? this.copy(seed) : seed]]);
      try {
        this.backpropagate(order, grads, retainGraph);
      } finally {
        // Pending gradients of nodes not reached (unused branches, or an error midway).
        for (const g of grads.values()) g.dispose();
      }
    } finally {
      this.gradEnabled = prevGrad;
    }
  }

  /**
   * Backpropagates `dy` from `root` (a recomputed checkpoint output) and returns the
   * gradients of `sinks` (leaves that stand in for the checkpoint's inputs) instead of
   * accumulating them into `.grad`; other leaves (parameters) accumulate as usual. The
   * sums run in the order the whole graph's backward would run them, so gradients are
   * bit-identical to backward without the checkpoint. `dy` stays the caller's.
   */
  backpropagateInto(root: Tensor, dy: Tensor, sinks: readonly Tensor[]): (Tensor | null)[] {
    const acc = new Map<Tensor, Tensor | null>(sinks.map((t) => [t, null]));
    if (!root.node) return sinks.map(() => null);
    const grads = new Map<GradNode, Tensor>([[root.node, this.shareStorage(dy, dy.shape, 'checkpoint')]]);
    const prevGrad = this.gradEnabled;
    this.gradEnabled = false;
    try {
      this.backpropagate(topoOrder(root.node), grads, false, acc);
    } catch (e) {
      for (const g of acc.values()) g?.dispose();
      throw e;
    } finally {
      for (const g of grads.values()) g.dispose();
      this.gradEnabled = prevGrad;
    }
    return sinks.map((t) => acc.get(t) ?? null);
  }

  /**
   * Visits `order` (outputs before inputs), turning each node's output gradient into its
   * inputs' gradients. Leaves in `sinks` collect theirs there rather than in `.grad`.
   */
  private backpropagate(order: readonly GradNode[], grads: Map<GradNode, Tensor>, retainGraph: boolean, sinks?: Map<Tensor, Tensor | null>): void {
    for (const node of order) {
      const dy = grads.get(node);
      if (!dy) continue;
      grads.delete(node);
      if (node.freed) {
        dy.dispose();
        throw new Error(`backward: the graph through ${node.op} was already freed by an earlier backward(); pass { retainGraph: true } to the first call`);
      }
      const ctx = {
        attrs: node.attrs,
        inputs: node.savedInputs,
        output: node.savedOutput,
        inputShapes: node.inputShapes,
        inputDtypes: node.inputDtypes,
        needsGrad: node.needsGrad,
      };
      // A scope around each gradient frees its intermediates; the returned grads survive.
      this.startScope();
      if (node.spec.gradInto) {
        // Gradients are delivered as they are formed; what now holds each sum survives the scope.
        const held: Tensor[] = [];
        try {
          node.spec.gradInto(dy, ctx, {
            target: (i) => this.pendingTarget(node, i, grads, held),
            add: (i, g) => {
              held.push(g);
              const sum = this.deliver(node, i, g, grads, sinks);
              if (sum) held.push(sum);
            },
          });
        } finally {
          this.endScope(held);
        }
        dy.dispose();
      } else {
        let inputGrads: (Tensor | null)[] = [];
        try {
          inputGrads = node.spec.grad(dy, ctx);
        } finally {
          this.endScope(inputGrads);
        }
        dy.dispose();
        for (let i = 0; i < node.inputShapes.length; i++) {
          const g = inputGrads[i];
          if (g) this.deliver(node, i, g, grads, sinks);
        }
      }
      if (!retainGraph) node.freeSaved();
    }
  }

  /**
   * Takes `g`, the gradient of `node`'s input `i`, summing it into that input's pending
   * gradient (or its sink, or its leaf's `.grad`). Returns the pending tensor that now
   * holds the sum, or null where `g` went to a leaf or was dropped.
   */
  private deliver(node: GradNode, i: number, g: Tensor, grads: Map<GradNode, Tensor>, sinks?: Map<Tensor, Tensor | null>): Tensor | null {
    if (!node.needsGrad[i]) {
      g.dispose();
      return null;
    }
    if (!shapesEqual(g.shape, node.inputShapes[i])) {
      g.dispose();
      throw new Error(`backward: gradient of ${node.op} input ${i} has shape ${fmtShape(g.shape)}, expected ${fmtShape(node.inputShapes[i])}`);
    }
    const inNode = node.inputNodes[i];
    if (inNode) {
      const prev = grads.get(inNode);
      const sum = prev ? this.sumInto(prev, g) : g;
      grads.set(inNode, sum);
      return sum;
    }
    const leaf = node.leaves[i];
    if (leaf && sinks?.has(leaf)) {
      const prev = sinks.get(leaf);
      const sum = prev ? this.sumInto(prev, g) : g;
      sinks.set(leaf, sum);
      return sum;
    }
    if (leaf && !leaf.isDisposed) this.accumulateLeaf(leaf, g);
    else g.dispose();
    return null;
  }

  /**
   * The pending gradient of `node`'s input `i` for a `gradInto` to add into, made to own
   * its storage (copied once where a pass-through shares it); null where there is none
   * yet, the input is a leaf or needs no gradient, or the backend cannot accumulate.
   */
  private pendingTarget(node: GradNode, i: number, grads: Map<GradNode, Tensor>, held: Tensor[]): Tensor | null {
    const inNode = node.inputNodes[i];
    if (!node.needsGrad[i] || !inNode) return null;
    const prev = grads.get(inNode);
    if (!prev || prev.busyWith !== null || !hasInPlaceKernel('Accumulate', prev.backend.name)) return null;
    if (prev.liveStorage('backward').refs === 1) return prev;
    const own = this.copy(prev);
    prev.dispose();
    grads.set(inNode, own);
    held.push(own);
    return own;
  }

  private accumulateLeaf(leaf: Tensor, g: Tensor): void {
    // `.grad` is written in place (clipping, accumulation), so it must own its storage;
    // gradients passed through (Add, Sub, Reshape) may share theirs with another
    // pending gradient. Copied only then: one dispatch, in the rare shared case.
    if (!leaf.grad && g.liveStorage('backward').refs > 1) {
      const own = this.copy(g);
      g.dispose();
      g = own;
    }
    // Across backward calls (micro-batches) `.grad` owns its storage, so the new
    // gradient is added into it: no third buffer for the sum.
    const grad = leaf.grad ? this.sumInto(leaf.grad, g) : g;
    grad.setMemoryTag('grads');
    this.keep(grad);
    leaf.grad = grad;
  }

  /**
   * `acc + g`, disposing both, as the sum of two gradients: added in place into whichever
   * of the two owns its storage exclusively (`Accumulate`, no new buffer), else a new
   * tensor (`Add`). A gradient owns its storage when it has the only handle on it: not
   * saved for backward, not the caller's seed or `dy`, not shared with another pending
   * gradient through a pass-through (`Add`, `Reshape`). Every path computes `acc + g`
   * rounded once (float addition commutes bitwise), so the result is the same bits.
   */
  private sumInto(acc: Tensor, g: Tensor): Tensor {
    if (this.ownsStorage(acc, g)) {
      this.runInPlace('Accumulate', { dst: acc, src: g }, acc.backend);
      g.dispose();
      return acc;
    }
    if (this.ownsStorage(g, acc)) {
      this.runInPlace('Accumulate', { dst: g, src: acc }, g.backend);
      acc.dispose();
      return g;
    }
    return this.addAndDispose(acc, g);
  }

  /** Whether `dst` may take `src` added in place: its storage has no other handle, and the backend has `Accumulate`. */
  private ownsStorage(dst: Tensor, src: Tensor): boolean {
    const s = dst.liveStorage('backward');
    return (
      s.refs === 1 &&
      dst.busyWith === null &&
      dst.dtype === src.dtype &&
      src.liveStorage('backward') !== s &&
      src.backend === s.backend &&
      hasInPlaceKernel('Accumulate', s.backend.name)
    );
  }

  private addAndDispose(a: Tensor, b: Tensor): Tensor {
    const sum = this.runOp('Add', [a, b], {});
    a.dispose();
    b.dispose();
    return sum;
  }

  /**
   * A copy of `t` with its own storage: `t + 0`. For 32-bit dtypes the zero travels in
   * the kernel's uniforms (`BinaryScalar`, one dispatch); others add a `Fill`ed zero.
   */
  private copy(t: Tensor): Tensor {
    if (t.dtype === 'f32' || t.dtype === 'i32' || t.dtype === 'u32') return this.runOp('BinaryScalar', [t], { op: 'Add', value: 0, scalarFirst: false });
    const zero = this.runOp('Fill', [], { shape: [], value: 0, dtype: t.dtype }, t.backend);
    const out = this.runOp('Add', [t, zero], {});
    zero.dispose();
    return out;
  }

  // ---- memory ------------------------------------------------------------------

  memory(name?: BackendName): MemoryInfo {
    const b = this.getBackend(name);
    return { ...b.memory(), liveTensors: this.liveTensors };
  }
}

/**
 * Throws `ChunkedTensorError` when an input of `op` is split across several bindings
 * and `op`'s kernel on `backend` was not registered to read such tensors; checked before
 * the kernel runs, so nothing is allocated. One field read per input otherwise.
 */
function refuseChunkedInputs(op: OpName, inputs: readonly Tensor[], backend: Backend): void {
  for (let i = 0; i < inputs.length; i++) {
    const n = inputs[i].storage!.bindings;
    if (n !== undefined && n > 1 && !kernelTakesChunks(op, backend.name)) {
      throw new ChunkedTensorError(op, inputs[i].shape, inputs[i].dtype, n);
    }
  }
}

/** Nodes reachable from `root`, ordered so that each node comes before its inputs. */
function topoOrder(root: GradNode): GradNode[] {
  const visited = new Set<GradNode>();
  const post: GradNode[] = [];
  const stack: [GradNode, number][] = [[root, 0]];
  visited.add(root);
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    const [node, i] = top;
    if (i < node.inputNodes.length) {
      top[1]++;
      const next = node.inputNodes[i];
      if (next && !visited.has(next)) {
        visited.add(next);
        stack.push([next, 0]);
      }
    } else {
      stack.pop();
      post.push(node);
    }
  }
  return post.reverse();
}

function collectTensors(value: unknown, out: Set<Tensor>, depth = 0): void {
  if (value instanceof Tensor) out.add(value);
  else if (depth < 4 && Array.isArray(value)) for (const v of value) collectTensors(v, out, depth + 1);
  else if (depth < 4 && value && typeof value === 'object' && !ArrayBuffer.isView(value)) {
    for (const v of Object.values(value)) collectTensors(v, out, depth + 1);
  }
}

/** @internal The single runtime instance. */
export const engine = new Engine();
installTensorRuntime(engine);

export { MEMORY_TAGS };
