import { type CausalLM, fromPretrained, openSource, parseSafetensors } from '@webpeft/nn';
import { type BackendName, type Tensor, assign, noGrad, tensor } from '@webpeft/tensor';
import { backendsUnderTest, base64Bytes, expectClose, initBackends } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { type PTuningConfig, type PromptableModel, getPeftModel, loadPromptLearningModel, memoryFiles } from '../index.js';
import golden from './fixtures/p_tuning_golden.json' with { type: 'json' };
import { checkLeaksPerTest, own } from './leak-check.js';

checkLeaksPerTest();

// Reference values: tools/golden/p_tuning_golden.py, which runs PEFT 0.21's own
// PromptEncoder (MLP and LSTM) on tiny transformers GPT-2 and LLaMA models.
const TOL = { rtol: 2e-4, atol: 2e-5 };

beforeAll(async () => {
  await initBackends();
});

interface Case {
  config: Record<string, unknown>;
  encoder: Record<string, { shape: number[]; value: number[]; grad: number[] }>;
  logits: number[];
  logitsShape: number[];
  loss: number;
  promptEmbeddings: number[];
  files: { 'adapter_config.json': string; 'adapter_model.safetensors': string };
  inferenceLogits: number[];
}
interface Family {
  checkpoint: { 'config.json': string; 'model.safetensors': string };
  inputIds: number[][];
  mlp: Case;
  lstm: Case;
}

function setValues(t: Tensor, values: number[]): void {
  const src = tensor(Float32Array.from(values), t.shape, { backend: t.backend.name });
  noGrad(() => assign(t, src));
  src.dispose();
}

function configOf(fx: Case): PTuningConfig {
  const c = fx.config;
  return {
    peftType: 'P_TUNING',
    numVirtualTokens: c.num_virtual_tokens as number,
    encoderReparameterizationType: c.encoder_reparameterization_type as 'MLP' | 'LSTM',
    encoderHiddenSize: c.encoder_hidden_size as number,
    ...(c.encoder_num_layers !== undefined ? { encoderNumLayers: c.encoder_num_layers as number } : {}),
  };
}

for (const family of ['gpt2', 'llama'] as const) {
  const fam = golden[family] as Family;
  const load = async (backend: BackendName) =>
    own((await fromPretrained(openSource({ 'config.json': fam.checkpoint['config.json'], 'model.safetensors': base64Bytes(fam.checkpoint['model.safetensors']) }), { backend })).model as CausalLM & PromptableModel);
  const idsOf = (backend: BackendName) => own(tensor(Int32Array.from(fam.inputIds.flat()), [fam.inputIds.length, fam.inputIds[0].length], { dtype: 'i32', backend }));

  describe(`P-tuning on a transformers ${family} matches PEFT`, () => {
    for (const kind of ['mlp', 'lstm'] as const) {
      const fx = fam[kind];
      it(`${kind} encoder: logits, loss, the gradient of every encoder tensor, and the saved files`, async () => {
        for (const backend of backendsUnderTest()) {
          const model = await load(backend);
          const peft = own(getPeftModel(model, configOf(fx)));
          const encoder = peft.encoder().stateDict();
          // PEFT's module names: embedding.weight, mlp_head.{0,2,4}.*, lstm_head.weight_ih_l0...
          expect([...encoder.keys()].sort()).toEqual(Object.keys(fx.encoder).sort());
          for (const [k, v] of Object.entries(fx.encoder)) {
            expect(encoder.get(k)!.shape).toEqual(v.shape);
            setValues(encoder.get(k)!, v.value);
          }
          const trainable = peft.getNbTrainableParameters().trainable;
          expect(trainable).toBe(Object.values(fx.encoder).reduce((a, v) => a + v.value.length, 0));
          const ids = idsOf(backend);
          const out = peft.forward({ inputIds: ids, labels: ids });
          own(out.logits);
          own(out.loss!);
          expect(out.logits.shape).toEqual(fx.logitsShape);
          expectClose(await out.logits.data(), fx.logits, { ...TOL, label: `${family} ${kind} ${backend} logits` });
          expectClose([await out.loss!.item()], [fx.loss], { ...TOL, label: `${family} ${kind} ${backend} loss` });
          out.loss!.backward();
          for (const [k, v] of Object.entries(fx.encoder)) {
            expectClose(await encoder.get(k)!.grad!.data(), v.grad, { rtol: 1e-3, atol: 1e-5, label: `${family} ${kind} ${backend} d${k}` });
          }

          const dir = memoryFiles();
          await peft.saveAdapter(dir);
          const ours = JSON.parse(new TextDecoder().decode(dir.files.get('adapter_config.json'))) as Record<string, unknown>;
          const theirs = JSON.parse(fx.files['adapter_config.json']) as Record<string, unknown>;
          expect(Object.keys(ours).filter((k) => JSON.stringify(ours[k]) !== JSON.stringify(theirs[k]))).toEqual([]);
          expect(Object.keys(theirs).filter((k) => !(k in ours))).toEqual(['modules_to_save', 'peft_version']);
          const saved = parseSafetensors(dir.files.get('adapter_model.safetensors')!).tensors;
          expect([...saved.keys()]).toEqual(['prompt_embeddings']);
          const peftSaved = parseSafetensors(base64Bytes(fx.files['adapter_model.safetensors'])).tensors.get('prompt_embeddings')!;
          expect(saved.get('prompt_embeddings')!.shape).toEqual(peftSaved.shape);
          // Our saved prompt_embeddings load back and give PEFT's inference logits.
          const reloaded = own(await loadPromptLearningModel(model, dir));
          expectClose(await own(noGrad(() => reloaded.forward({ inputIds: ids })).logits).data(), fx.inferenceLogits, { ...TOL, label: `${family} ${kind} ${backend} our file` });
          expectClose(await own(reloaded.encoder().forward()).data(), fx.promptEmbeddings, { ...TOL, label: `${family} ${kind} ${backend} prompt_embeddings` });
        }
      });

      it(`${kind}: PEFT's saved adapter loads (inference only) and reproduces its logits`, async () => {
        for (const backend of backendsUnderTest()) {
          const model = await load(backend);
          const files = memoryFiles({ 'adapter_config.json': fx.files['adapter_config.json'], 'adapter_model.safetensors': base64Bytes(fx.files['adapter_model.safetensors']) });
          await expect(loadPromptLearningModel(model, files, { isTrainable: true })).rejects.toThrow(/P_TUNING adapter stores the encoded virtual tokens.*inference only/);
          const peft = own(await loadPromptLearningModel(model, files));
          expect(peft.getNbTrainableParameters().trainable).toBe(0);
          const ids = idsOf(backend);
          expectClose(await own(noGrad(() => peft.forward({ inputIds: ids })).logits).data(), fx.inferenceLogits, { ...TOL, label: `${family} ${kind} ${backend} PEFT file` });
        }
      });
    }
  });
}

describe('P-tuning config validation', () => {
  const model = async () => own((await fromPretrained(openSource({ 'config.json': golden.gpt2.checkpoint['config.json'], 'model.safetensors': base64Bytes(golden.gpt2.checkpoint['model.safetensors']) }), { backend: 'cpu' })).model);
  const bad: [Partial<PTuningConfig> & Record<string, unknown>, RegExp][] = [
    [{ encoderReparameterizationType: 'GRU' as 'MLP' }, /P_TUNING config: encoderReparameterizationType must be MLP or LSTM, got "GRU"/],
    [{ encoderHiddenSize: 0 }, /encoderHiddenSize must be a positive integer, got 0/],
    [{ encoderReparameterizationType: 'LSTM', encoderNumLayers: 1.5 }, /encoderNumLayers must be a positive integer, got 1.5/],
    [{ encoderNumLayers: 3 }, /encoderNumLayers 3 has no effect on the MLP encoder/],
    [{ encoderDropout: -0.1 }, /encoderDropout must be a number in \[0, 1\), got -0.1/],
    [{ numVirtualTokens: 0 }, /numVirtualTokens must be a positive integer, got 0/],
  ];
  for (const [config, message] of bad) {
    it(`rejects ${JSON.stringify(config)}`, async () => {
      const m = await model();
      expect(() => getPeftModel(m, { peftType: 'P_TUNING', numVirtualTokens: 2, ...config })).toThrow(message);
    });
  }
});
