import { ConfigError, Module } from '@webpeft/nn';
import type { PeftConfig } from '../config.js';
import { getTunerMethod } from '../registry.js';
import { TunerLayer } from './tuner-layer.js';
import { ModulesToSaveWrapper } from './modules-to-save.js';

/** A tuner layer of any method, as the model-level code sees it. */
export type AnyTunerLayer = TunerLayer<PeftConfig, string, Module, unknown>;

/**
 * PEFT's `BaseTuner` (`LoraModel`, ...): holds the user's model as `model`, so that
 * inside a `PeftModel` parameter paths read `base_model.model.<path>` exactly as
 * PEFT's state dict keys do. Finds targets, wraps them, and lists the wrapped layers.
 */
export class TunerModel extends Module {
  readonly model: Module;

  constructor(model: Module) {
    super();
    this.model = this.registerModule('model', model);
  }

  /**
   * Resolves `config` with its method, wraps every target (or adds the adapter to an
   * existing layer of the method) and returns the resolved config. Throws when no
   * module matches; on any error the model is left exactly as it was.
   */
  inject(adapterName: string, config: PeftConfig): PeftConfig {
    return this.injectUndoable(adapterName, config).config;
  }

  /**
   * {@link inject}, also returning `undo()`, which takes the adapter out again: layers
   * it created are replaced by the modules they wrapped and its tensors are disposed,
   * so the module tree and the live tensors are as before the call. A failure part way
   * undoes itself before throwing.
   */
  injectUndoable(adapterName: string, config: PeftConfig): { config: PeftConfig; undo: () => void } {
    const method = getTunerMethod(config.peftType, 'getPeftModel');
    let c = method.resolveConfig(config, this.model);
    if (method.prepare) c = method.prepare(c, this.model);
    const targets = walk(this.model).filter(([path, m]) => method.isTarget(path, m, c, this.model));
    if (targets.length === 0) {
      const t = (c as { targetModules?: unknown }).targetModules;
      throw new ConfigError(`${c.peftType}: target modules ${JSON.stringify(t)} not found in the base model (adapter '${adapterName}')`, undefined, 'targetModules');
    }
    const extended: AnyTunerLayer[] = [];
    const created: { path: string; original: Module; layer: AnyTunerLayer }[] = [];
    const undos: (() => void)[] = [];
    const undo = () => {
      for (const u of undos) u();
      for (const layer of extended) if (layer.hasAdapter(adapterName)) layer.deleteAdapter(adapterName);
      for (const { path, original, layer } of created.reverse()) {
        for (const a of layer.adapterNames()) for (const t of layer.adapterParameters(a)) t.dispose();
        if (this.model.getSubmodule(path) === layer) this.model.replaceSubmodule(path, original);
      }
    };
    try {
      for (const [path, m] of targets) {
        if (m instanceof TunerLayer) {
          const layer = m as AnyTunerLayer;
          layer.addAdapter(adapterName, c, path);
          extended.push(layer);
          layer.train(m.training);
          continue;
        }
        const layer = method.createLayer(m, c, path);
        layer.training = m.training;
        this.model.replaceSubmodule(path, layer);
        created.push({ path, original: m, layer });
        layer.addAdapter(adapterName, c, path);
        layer.train(m.training);
      }
      const undoSaved = wrapModulesToSave(this.model, adapterName, method.modulesToSave?.(c) ?? []);
      undos.push(undoSaved);
    } catch (e) {
      undo();
      throw e;
    }
    return { config: c, undo };
  }

  /** Every wrapped layer with its path in the user's model. */
  tunerLayers(): [string, AnyTunerLayer][] {
    return this.model.namedModules().filter((e): e is [string, AnyTunerLayer] => e[1] instanceof TunerLayer);
  }

  /** Every `modules_to_save` wrapper with its path in the user's model. */
  savedModules(): [string, ModulesToSaveWrapper][] {
    return this.model.namedModules().filter((e): e is [string, ModulesToSaveWrapper] => e[1] instanceof ModulesToSaveWrapper);
  }

  /** Forwards to the wrapped model (`forward(...args)` of the user's model). */
  forward(...args: unknown[]): unknown {
    return (this.model as unknown as { forward(...a: unknown[]): unknown }).forward(...args);
  }
}

/** Modules with their paths, not descending into tuner layers (their children are adapter internals). */
export function walk(root: Module, prefix = ''): [string, Module][] {
  const out: [string, Module][] = [];
  for (const [name, child] of root.namedChildren()) {
    const path = prefix ? `${prefix}.${name}` : name;
    out.push([path, child]);
    if (!(child instanceof TunerLayer || child instanceof ModulesToSaveWrapper)) out.push(...walk(child, path));
  }
  return out;
}

/**
 * Gives adapter `adapterName` its own copy of every module named in `names` (matched as
 * the whole path or its last dotted parts, e.g. `lm_head`), wrapping each in a
 * {@link ModulesToSaveWrapper} the first time. Returns the undo (copies disposed, a
 * wrapper left empty replaced by its original). Throws when no name matches a module,
 * or a match is an adapter layer; nothing is changed then.
 */
function wrapModulesToSave(model: Module, adapterName: string, names: readonly string[]): () => void {
  if (names.length === 0) return () => {};
  const matches = walk(model).filter(([path]) => names.some((t) => path === t || path.endsWith(`.${t}`)));
  if (matches.length === 0) {
    throw new ConfigError(`modulesToSave ${JSON.stringify(names)}: no module of the base model matches (adapter '${adapterName}')`, undefined, 'modulesToSave');
  }
  for (const [path, m] of matches) {
    if (m instanceof TunerLayer) throw new ConfigError(`modulesToSave: '${path}' is also an adapter target; a module is either adapted or saved whole (adapter '${adapterName}')`, undefined, 'modulesToSave');
  }
  const done: { path: string; wrapper: ModulesToSaveWrapper; created: boolean }[] = [];
  const undo = () => {
    for (const { path, wrapper, created } of done.reverse()) {
      wrapper.deleteAdapter(adapterName);
      if (created && wrapper.adapterNames().length === 0 && model.getSubmodule(path) === wrapper) model.replaceSubmodule(path, wrapper.original_module);
    }
  };
  try {
    for (const [path, m] of matches) {
      const created = !(m instanceof ModulesToSaveWrapper);
      const wrapper = m instanceof ModulesToSaveWrapper ? m : new ModulesToSaveWrapper(m, path);
      if (created) model.replaceSubmodule(path, wrapper);
      done.push({ path, wrapper, created });
      wrapper.addAdapter(adapterName);
    }
  } catch (e) {
    undo();
    throw e;
  }
  return undo;
}
