import { type BackendName, type Tensor, assign, tanh, tensor } from '@webpeft/tensor';
import { Conv1D, Embedding, Linear, Module, ModuleList, RMSNorm, LayerNorm } from '@webpeft/nn';

/** A module with named children only (a path segment such as `transformer`, `attn`, `mlp`). */
export class Container extends Module {
  constructor(children: Record<string, Module> = {}) {
    super();
    for (const [k, m] of Object.entries(children)) this.registerModule(k, m);
  }
  forward(): never {
    throw new Error('container');
  }
}

function child<M extends Module>(m: Module, path: string): M {
  return m.getSubmodule(path) as M;
}

/**
 * The golden script's toy model: `transformer.wte` Embedding(V, D),
 * `transformer.h.0.attn.c_attn` Conv1D(D, H), `transformer.h.0.mlp.c_proj` Linear(H, D),
 * `lm_head` Linear(D, V, no bias); `logits = lm_head(c_proj(tanh(c_attn(wte(ids)))))`.
 */
export class ToyGPT extends Module {
  readonly config = { model_type: 'gpt2' };

  constructor(readonly sizes: { vocab: number; hidden: number; attnOut: number }, backend?: BackendName) {
    super();
    const { vocab: V, hidden: D, attnOut: H } = sizes;
    const block = new Container({ attn: new Container({ c_attn: new Conv1D(D, H, { backend }) }), mlp: new Container({ c_proj: new Linear(H, D, { backend }) }) });
    this.registerModule('transformer', new Container({ wte: new Embedding(V, D, { backend }), h: new ModuleList([block]) }));
    this.registerModule('lm_head', new Linear(D, V, { bias: false, backend }));
  }

  forward(ids: Tensor): Tensor {
    const e = child<Embedding>(this, 'transformer.wte').forward(ids);
    const a = child<Conv1D>(this, 'transformer.h.0.attn.c_attn').forward(e);
    const t = tanh(a);
    const o = child<Linear>(this, 'transformer.h.0.mlp.c_proj').forward(t);
    const logits = child<Linear>(this, 'lm_head').forward(o);
    for (const x of [e, a, t, o]) x.dispose();
    return logits;
  }

  /** Copies HF-named base weights (flat arrays) in. */
  loadBase(base: Record<string, number[]>): void {
    const sd = this.stateDict();
    for (const [k, v] of Object.entries(base)) {
      const dst = sd.get(k);
      if (!dst) throw new Error(`no ${k}`);
      const src = tensor(new Float32Array(v), dst.shape, { backend: dst.backend.name });
      assign(dst, src);
      src.dispose();
    }
  }
}

/** A GPT-2-small-shaped tree (12 blocks; c_attn Conv1D 768 -> 2304, c_proj, c_fc, mlp.c_proj; wte/wpe; tied head absent). */
export function gpt2SmallMeta(): Module {
  const backend: BackendName = 'meta';
  const blocks = Array.from({ length: 12 }, () =>
    new Container({
      ln_1: new LayerNorm(768, 1e-5, { backend }),
      attn: new Container({ c_attn: new Conv1D(768, 2304, { backend }), c_proj: new Conv1D(768, 768, { backend }) }),
      ln_2: new LayerNorm(768, 1e-5, { backend }),
      mlp: new Container({ c_fc: new Conv1D(768, 3072, { backend }), c_proj: new Conv1D(3072, 768, { backend }) }),
    }),
  );
  return new Container({
    transformer: new Container({
      wte: new Embedding(50257, 768, { backend }),
      wpe: new Embedding(1024, 768, { backend }),
      h: new ModuleList(blocks),
      ln_f: new LayerNorm(768, 1e-5, { backend }),
    }),
  });
}

/** A LLaMA-7B-shaped tree on the meta backend (32 layers, 4096 hidden, 11008 MLP, 32000 vocab, untied head). */
export function llama7bMeta(): Module {
  const backend: BackendName = 'meta';
  const lin = (i: number, o: number) => new Linear(i, o, { bias: false, backend });
  const layers = Array.from({ length: 32 }, () =>
    new Container({
      self_attn: new Container({ q_proj: lin(4096, 4096), k_proj: lin(4096, 4096), v_proj: lin(4096, 4096), o_proj: lin(4096, 4096) }),
      mlp: new Container({ gate_proj: lin(4096, 11008), up_proj: lin(4096, 11008), down_proj: lin(11008, 4096) }),
      input_layernorm: new RMSNorm(4096, 1e-6, { backend }),
      post_attention_layernorm: new RMSNorm(4096, 1e-6, { backend }),
    }),
  );
  const m = new Container({
    model: new Container({ embed_tokens: new Embedding(32000, 4096, { backend }), layers: new ModuleList(layers), norm: new RMSNorm(4096, 1e-6, { backend }) }),
    lm_head: lin(4096, 32000),
  });
  (m as unknown as { config: unknown }).config = { model_type: 'llama' };
  return m;
}

