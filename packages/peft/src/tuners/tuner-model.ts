import { ConfigError, Module } from '@webpeft/nn';
import type { PeftConfig } from '../config.js';
import { getTunerMethod } from '../registry.js';
import { TunerLayer } from './tuner-layer.js';

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
    const undo = () => {
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
    if (!(child instanceof TunerLayer)) out.push(...walk(child, path));
  }
  return out;
}

