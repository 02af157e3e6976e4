/**
 * The default base model of the fine-tuning example: a small LLaMA-family causal LM
 * pretrained on Moby-Dick, shipped as a Hugging Face checkpoint folder (`config.json`,
 * bf16 `model.safetensors`, `generation_config.json`, `tokenizer.json`,
 * `tokenizer_config.json`). This module only says where the folder is; load it with
 * `fromPretrained` of `@webpeft/nn`.
 */

/**
 * The checkpoint folder, as a URL ending in `/`: a `file:` URL in Node, the URL the
 * bundler or dev server serves the package from in a browser.
 * @example
 * const { model, tokenizer } = await fromPretrained(DEFAULT_MODEL_URL);
 */
export const DEFAULT_MODEL_URL: URL = new URL('../model/', import.meta.url);

/** The files of the checkpoint folder (every one a browser app has to serve). */
export const DEFAULT_MODEL_FILES: readonly string[] = ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'];

/**
 * The URL of one file of the checkpoint folder.
 * @example
 * const config = await (await fetch(defaultModelFileUrl('config.json'))).json();
 */
export function defaultModelFileUrl(file: string): URL {
  if (!DEFAULT_MODEL_FILES.includes(file)) {
    throw new Error(`defaultModelFileUrl: '${file}' is not a file of the default model (files: ${DEFAULT_MODEL_FILES.join(', ')})`);
  }
  return new URL(file, DEFAULT_MODEL_URL);
}
