/** The page's error box: a title per kind of failure, what to do about it, and memory by tag when out of memory. */
import type { StudioErrorInfo, StudioErrorKind } from './protocol.js';

const MIB = 2 ** 20;

/** The Chromium command-line flags that give WebGPU where it is behind a flag (Linux, headless, software Vulkan). */
export const WEBGPU_FLAGS = '--enable-unsafe-webgpu --enable-features=Vulkan (software rendering: also --use-webgpu-adapter=swiftshader --enable-unsafe-swiftshader)';

const TITLES: Record<StudioErrorKind, string> = {
  'no-webgpu': 'No WebGPU in this browser',
  'no-adapter': 'No adapter yet',
  'out-of-memory': 'Out of device memory',
  'unsupported-model': 'Unsupported model type',
  'malformed-file': 'A file could not be read',
  'invalid-setting': 'Check the settings',
  error: 'Something went wrong',
};

const ADVICE: Record<StudioErrorKind, string> = {
  'no-webgpu': `The studio trains on WebGPU. Use a recent Chrome, Edge or Chromium; on Linux start it with ${WEBGPU_FLAGS}, or enable chrome://flags/#enable-unsafe-webgpu.`,
  'no-adapter': 'Train an adapter (section 4), or load adapter files (section 6), first.',
  'out-of-memory': 'Lower the batch size, the sequence length or the rank, or use QLoRA (a 4-bit base), then train again.',
  'unsupported-model': 'The studio loads GPT-2 and LLaMA-family models (LLaMA, Mistral, Qwen2, SmolLM, TinyLlama) in Hugging Face format.',
  'malformed-file': 'Check that the file is complete and of the expected kind.',
  'invalid-setting': '',
  error: 'The message below says what failed.',
};

/** Shows `info` in `box` (and focuses it, so keyboard and screen-reader users land on it). */
export function showError(box: HTMLElement, info: StudioErrorInfo): void {
  box.replaceChildren();
  const h = document.createElement('h2');
  h.textContent = TITLES[info.kind];
  const msg = document.createElement('p');
  msg.className = 'message';
  msg.textContent = info.message;
  box.append(h, msg);
  if (ADVICE[info.kind]) {
    const advice = document.createElement('p');
    advice.textContent = ADVICE[info.kind];
    box.append(advice);
  }
  if (info.memoryByTag) box.append(memoryTable(info.memoryByTag));
  box.dataset.kind = info.kind;
  box.hidden = false;
  box.tabIndex = -1;
  box.focus();
}

/** Hides the error box. */
export function clearError(box: HTMLElement): void {
  box.hidden = true;
  box.replaceChildren();
  delete box.dataset.kind;
}

function memoryTable(bytesByTag: Record<string, number>): HTMLTableElement {
  const table = document.createElement('table');
  table.createCaption().textContent = 'Device memory by tag at the failure';
  for (const [tag, bytes] of Object.entries(bytesByTag)) {
    const row = table.insertRow();
    const th = document.createElement('th');
    th.scope = 'row';
    th.textContent = tag;
    row.append(th);
    row.insertCell().textContent = `${(bytes / MIB).toFixed(2)} MiB`;
  }
  return table;
}
