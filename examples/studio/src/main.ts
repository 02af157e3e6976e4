/**
 * The studio page: reads the form, sends requests to the training worker, and shows
 * what comes back (model info, live loss and memory charts, stats, generations,
 * downloads, errors). All model work happens in the worker (`worker.ts`).
 */
import './style.css';
import { clearError, showError } from './alerts.js';
import { LossChart, MemoryChart } from './charts.js';
import { RequestError, WorkerClient } from './client.js';
import { SftDataError } from '@webpeft/nn';
import { MalformedFileError, parseData } from './data.js';
import { directoryPicker, pickDirectory } from './folder-picker.js';
import { BOTTLENECK_DEFAULTS, isBottleneck, isPromptMethod } from './method-options.js';
import { DEFAULT_MODEL_ROUTE } from './paths.js';
import { SAMPLE_TEXT } from './sample-text.js';
import type { CombineOptions, MethodName, ModelChoice, StudioErrorInfo, TrainSettings, WorkerEvent } from './protocol.js';
import { download, filesFromPicked, zipFiles } from './zip.js';

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`studio page: no element #${id}`);
  return el as T;
};
const input = (id: string) => $<HTMLInputElement>(id);
const button = (id: string) => $<HTMLButtonElement>(id);
const alertBox = $('alert');
const MIB = 2 ** 20;

/** What the page knows about the worker's state, for enabling controls. */
const state = { gpu: false, model: false, adapter: false, busy: false, training: false, paused: false };
/** Where the training text came from (a file's name, or the sample), named in data errors as `name:line`. */
let dataName = 'sample.txt';
/** The model folder's files as last chosen (File System Access picker or folder input). */
let folderFiles: File[] = [];
let folderName = '';

const lossChart = new LossChart($('loss-chart'));
let memoryChart: MemoryChart | null = null;
const client = new WorkerClient(new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' }), onEvent);

function refresh(): void {
  const idle = state.gpu && !state.busy;
  button('load-model').disabled = !idle;
  button('train').disabled = !(idle && state.model);
  button('pause').disabled = !state.training;
  button('pause').textContent = state.paused ? 'Resume' : 'Pause';
  button('stop').disabled = !state.training;
  for (const id of ['generate', 'download-adapter', 'merge-download', 'download-logits', 'combine-adapter']) button(id).disabled = !(idle && state.adapter);
  button('load-adapter').disabled = !(idle && state.model);
}

function fail(e: unknown): void {
  const info: StudioErrorInfo =
    e instanceof RequestError ? e.info : e instanceof MalformedFileError || e instanceof SftDataError ? { kind: 'malformed-file', message: e.message } : { kind: 'error', message: e instanceof Error ? e.message : String(e) };
  showError(alertBox, info);
}

/** Runs `work` with the controls locked, showing any failure. */
async function busy(work: () => Promise<void>): Promise<void> {
  clearError(alertBox);
  state.busy = true;
  refresh();
  try {
    await work();
  } catch (e) {
    fail(e);
  } finally {
    state.busy = false;
    refresh();
  }
}

function onEvent(e: WorkerEvent): void {
  switch (e.type) {
    case 'log':
      log(e.line);
      break;
    case 'state':
      state.training = e.state !== 'idle';
      state.paused = e.state === 'paused';
      refresh();
      break;
    case 'step': {
      lossChart.train(e.step, e.loss);
      memoryChart ??= new MemoryChart($('memory-chart'), Object.keys(e.memoryByTag));
      memoryChart.add(e.step, e.memoryByTag);
      $('stat-step').textContent = `${e.step} / ${e.total}`;
      $('stat-loss').textContent = e.loss.toFixed(4);
      $('stat-speed').textContent = e.tokensPerSecond.toFixed(0);
      $('stat-eta').textContent = `${e.etaSeconds.toFixed(0)} s`;
      $('stat-memory').textContent = `${(e.peakBytes / MIB).toFixed(1)} MiB`;
      $<HTMLProgressElement>('progress').value = e.step / e.total;
      const item = document.createElement('li');
      item.value = e.step;
      item.dataset.loss = String(e.loss);
      item.textContent = `train loss ${e.loss.toFixed(4)}`;
      $('loss-list').append(item);
      break;
    }
    case 'eval':
      lossChart.eval(e.step, e.loss);
      $('stat-eval').textContent = e.loss.toFixed(4);
      log(`step ${e.step}: eval loss ${e.loss.toFixed(4)}`);
      break;
    case 'download': {
      const bar = $<HTMLProgressElement>('download-progress');
      bar.hidden = false;
      $('download-label').hidden = false;
      if (e.total) {
        bar.max = e.total;
        bar.value = e.loaded;
      } else bar.removeAttribute('value');
      $('download-label').textContent = `${e.file}: ${(e.loaded / MIB).toFixed(1)}${e.total ? ` of ${(e.total / MIB).toFixed(1)}` : ''} MiB${e.done ? ' (cached)' : ''}`;
      break;
    }
    case 'reply':
      break;
  }
}

function log(line: string): void {
  $('log').textContent += `${line}\n`;
}

function modelChoice(): ModelChoice {
  const source = document.querySelector<HTMLInputElement>('input[name="model-source"]:checked')?.value;
  if (source === 'folder') {
    if (folderFiles.length === 0) throw new RequestError({ kind: 'invalid-setting', message: 'choose a model folder first' });
    return { kind: 'files', files: folderFiles, folder: folderName };
  }
  if (source === 'hub') {
    const repo = input('model-hub').value.trim();
    if (repo === '') throw new RequestError({ kind: 'invalid-setting', message: 'type a Hub repo id (org/name) first' });
    return { kind: 'hub', repo };
  }
  if (source === 'url') {
    const url = input('model-url').value.trim();
    if (!/^https?:\/\//i.test(url)) throw new RequestError({ kind: 'invalid-setting', message: `the model URL must start with http:// or https:// (got ${JSON.stringify(url)})` });
    return { kind: 'url', url };
  }
  return { kind: 'default', url: new URL(`${DEFAULT_MODEL_ROUTE}/`, document.baseURI).href };
}

const num = (id: string) => Number(input(id).value);

function settings(): TrainSettings {
  const text = $<HTMLTextAreaElement>('data-text').value;
  if (text.trim().length === 0) throw new RequestError({ kind: 'invalid-setting', message: 'no training text: paste some, or drop a .txt or .jsonl file' });
  // Test hook: `?oom-at-step=N` makes the worker's step N allocate more than the device allows.
  const oomAtStep = new URLSearchParams(location.search).get('oom-at-step');
  return {
    method: $<HTMLSelectElement>('method').value as MethodName,
    rank: num('rank'),
    alpha: num('alpha'),
    useRslora: input('rslora').checked,
    loraInit: $<HTMLSelectElement>('lora-init').value,
    loftqIter: num('loftq-iter'),
    targets: input('targets').value,
    numVirtualTokens: num('virtual-tokens'),
    reductionFactor: num('reduction-factor'),
    nonLinearity: $<HTMLSelectElement>('non-linearity').value,
    encoder: $<HTMLSelectElement>('encoder').value as TrainSettings['encoder'],
    encoderHiddenSize: num('encoder-hidden'),
    lr: num('lr'),
    steps: num('steps'),
    batch: num('batch'),
    seqLen: num('seq-len'),
    evalEvery: num('eval-every'),
    seed: num('seed'),
    text,
    dataName,
    packing: input('packing').checked,
    completionOnly: $<HTMLSelectElement>('completion-only').value as TrainSettings['completionOnly'],
    ...(oomAtStep !== null ? { oomAtStep: Number(oomAtStep) } : {}),
  };
}

/** Shows the options that apply to the chosen method. */
function showMethodOptions(): void {
  const m = $<HTMLSelectElement>('method').value as MethodName;
  const lora = m === 'lora' || m === 'qlora' || m === 'dora';
  const prompt = isPromptMethod(m);
  const show = (cls: string, on: boolean) => {
    for (const el of Array.from(document.querySelectorAll<HTMLElement>(cls))) el.hidden = !on;
  };
  show('.lora-only', lora);
  // PiSSA, OLoRA and LoftQ are LoRA/QLoRA inits (PEFT's init_lora_weights).
  show('.init-only', m === 'lora' || m === 'qlora');
  if (m !== 'lora' && m !== 'qlora') $<HTMLSelectElement>('lora-init').value = 'default';
  // Bottleneck adapters sit at the attention and feed-forward sublayers: no target list.
  show('.tuner-only', lora || m === 'ia3');
  show('.prompt-only', prompt);
  show('.bottleneck-only', isBottleneck(m));
  show('.ptuning-only', m === 'p-tuning');
  if (isBottleneck(m)) {
    input('reduction-factor').value = String(BOTTLENECK_DEFAULTS[m].reductionFactor);
    $<HTMLSelectElement>('non-linearity').value = BOTTLENECK_DEFAULTS[m].nonLinearity;
  }
  // Virtual tokens take the place of packing's per-sample mask.
  if (prompt) input('packing').checked = false;
  // IA3 targets its own attention and feed-forward layers unless told otherwise.
  if (m === 'ia3' && input('targets').value === 'all-linear') input('targets').value = '';
  if (lora && input('targets').value === '') input('targets').value = 'all-linear';
  input('adapter-4bit').checked = m === 'qlora';
}

async function readDataFile(file: File): Promise<void> {
  clearError(alertBox);
  try {
    if (!/\.(txt|jsonl|json)$/i.test(file.name)) throw new MalformedFileError(file.name, 0, 'expected a .txt or .jsonl file');
    const text = await file.text();
    // Parsed here too, so a bad line is named at once and the text box keeps what it had.
    const dataset = parseData(file.name, text);
    $<HTMLTextAreaElement>('data-text').value = text;
    dataName = file.name;
    $('data-info').textContent = `${file.name}: ${dataset.records.length.toLocaleString('en-US')} ${dataset.format === 'text' ? 'lines of text' : `${dataset.format} records`}, ${text.length.toLocaleString('en-US')} characters`;
  } catch (e) {
    fail(e);
  }
}

function wire(): void {
  for (const radio of Array.from(document.querySelectorAll<HTMLInputElement>('input[name="model-source"]'))) {
    radio.addEventListener('change', () => {
      $('folder-row').hidden = radio.value !== 'folder' || !radio.checked;
      $('url-row').hidden = radio.value !== 'url' || !radio.checked;
      $('hub-row').hidden = radio.value !== 'hub' || !radio.checked;
    });
  }
  const picker = directoryPicker();
  const chose = (files: File[], name: string) => {
    folderFiles = files;
    folderName = name;
    $('folder-info').textContent = `${name}: ${files.length} files (${files.map((f) => f.name).join(', ')})`;
  };
  // The File System Access picker where the browser has one; the folder input otherwise.
  button('pick-folder').hidden = picker === null;
  input('model-folder').hidden = picker !== null;
  button('pick-folder').addEventListener('click', () =>
    void busy(async () => {
      const picked = await pickDirectory(picker!);
      if (picked) chose(picked.files, picked.name);
    }),
  );
  input('model-folder').addEventListener('change', () => {
    const files = Array.from(input('model-folder').files ?? []);
    chose(files, files[0]?.webkitRelativePath.split('/')[0] || 'folder');
  });
  button('load-model').addEventListener('click', () =>
    void busy(async () => {
      state.model = false;
      state.adapter = false;
      $('model-info').textContent = 'Loading...';
      try {
        const info = await client.request('load', { model: modelChoice() });
        state.model = true;
        $('model-info').textContent = `${info.name}: ${info.modelType}, ${info.parameters.toLocaleString('en-US')} parameters, vocabulary ${info.vocabSize}, ${info.maxPositions} positions; GPU: ${info.adapter}`;
      } catch (e) {
        $('model-info').textContent = 'No model loaded.';
        throw e;
      }
    }),
  );
  $<HTMLSelectElement>('method').addEventListener('change', showMethodOptions);
  button('sample-text').addEventListener('click', () => {
    $<HTMLTextAreaElement>('data-text').value = SAMPLE_TEXT;
    dataName = 'sample.txt';
    $('data-info').textContent = `sample text: ${SAMPLE_TEXT.length.toLocaleString('en-US')} characters`;
  });
  input('data-file').addEventListener('change', () => {
    const f = input('data-file').files?.[0];
    if (f) void readDataFile(f);
  });
  const zone = $('drop-zone');
  zone.addEventListener('dragover', (e) => {
    e.preventDefault();
    zone.classList.add('over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    const f = e.dataTransfer?.files[0];
    if (f) void readDataFile(f);
  });
  button('train').addEventListener('click', () =>
    void busy(async () => {
      const s = settings();
      lossChart.clear();
      memoryChart?.clear();
      $('loss-list').replaceChildren();
      $<HTMLProgressElement>('progress').value = 0;
      $('train-status').textContent = 'training...';
      state.adapter = false;
      try {
        const r = await client.request('train', { settings: s });
        log(
          `${r.stopped ? 'Stopped' : 'Done'} after ${r.steps} steps in ${r.seconds.toFixed(1)} s (${r.tokensPerSecond.toFixed(0)} tokens/s): eval loss ${r.evalBefore.toFixed(4)} -> ${r.evalAfter.toFixed(4)}; peak memory ${Object.entries(r.peakBytesByTag)
            .filter(([, b]) => b > 0)
            .map(([t, b]) => `${t} ${(b / MIB).toFixed(2)} MiB`)
            .join(', ')}`,
        );
        $('train-status').textContent = r.stopped ? 'stopped' : 'done';
      } catch (e) {
        $('train-status').textContent = 'failed';
        throw e;
      } finally {
        // Whatever was trained so far (also after stop or a failure mid-run) is usable.
        state.adapter = true;
      }
    }),
  );
  button('pause').addEventListener('click', () => client.control(state.paused ? 'resume' : 'pause'));
  button('stop').addEventListener('click', () => client.control('stop'));
  button('generate').addEventListener('click', () =>
    void busy(async () => {
      $('out-base').textContent = '...';
      $('out-adapted').textContent = '...';
      const prompt = input('prompt').value;
      const r = await client.request('generate', { prompt, maxNewTokens: num('new-tokens') });
      $('out-base').textContent = prompt + r.base;
      $('out-adapted').textContent = prompt + r.adapted;
    }),
  );
  button('download-adapter').addEventListener('click', () =>
    void busy(async () => {
      const { files } = await client.request('exportAdapter', {});
      download('adapter.zip', zipFiles(files), 'application/zip');
    }),
  );
  button('merge-download').addEventListener('click', () =>
    void busy(async () => {
      const { files } = await client.request('mergeAndExport', {});
      download('merged-model.zip', zipFiles(files), 'application/zip');
    }),
  );
  button('download-logits').addEventListener('click', () =>
    void busy(async () => {
      const r = await client.request('logits', { prompt: input('prompt').value });
      download('logits.json', JSON.stringify(r), 'application/json');
    }),
  );
  button('load-adapter').addEventListener('click', () =>
    void busy(async () => {
      const picked = Array.from(input('adapter-files').files ?? []);
      if (picked.length === 0) throw new RequestError({ kind: 'invalid-setting', message: 'choose adapter files (a .zip, or adapter_config.json and adapter_model.safetensors) first' });
      const files = await filesFromPicked(picked);
      const r = await client.request('loadAdapter', { files, quantizedBase: input('adapter-4bit').checked });
      state.adapter = true;
      log(`Loaded a ${r.method} adapter (${r.trainable.toLocaleString('en-US')} trainable parameters)`);
    }),
  );
  button('combine-adapter').addEventListener('click', () =>
    void busy(async () => {
      const picked = Array.from(input('combine-files').files ?? []);
      if (picked.length === 0) throw new RequestError({ kind: 'invalid-setting', message: 'choose the other adapter (a .zip, or adapter_config.json and adapter_model.safetensors) first' });
      const weights = input('combine-weights').value.split(',').map((w) => Number(w.trim()));
      if (weights.length !== 2 || weights.some((w) => !Number.isFinite(w))) throw new RequestError({ kind: 'invalid-setting', message: `weights must be two numbers, for the current and the other adapter (got '${input('combine-weights').value}')` });
      const r = await client.request('combineAdapter', { files: await filesFromPicked(picked), weights: [weights[0], weights[1]], options: combineOptions() });
      log(`Combined the adapters with ${r.combinationType}: a rank-${r.rank} adapter is now the current one`);
    }),
  );
}

/** The combine options from the page: only those the chosen type takes (PEFT refuses the others). */
function combineOptions(): CombineOptions {
  const combinationType = $<HTMLSelectElement>('combination-type').value;
  const options: CombineOptions = { combinationType };
  if (/^(ties|dare|magnitude)/.test(combinationType)) options.density = num('combine-density');
  if (/ties/.test(combinationType)) options.majoritySignMethod = $<HTMLSelectElement>('majority-sign').value as 'total' | 'frequency';
  return options;
}

async function checkWebGpu(): Promise<void> {
  const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
  if (!gpu) {
    showError(alertBox, { kind: 'no-webgpu', message: 'navigator.gpu is undefined: this browser does not expose WebGPU.' });
    return;
  }
  if (!(await gpu.requestAdapter())) {
    showError(alertBox, { kind: 'no-webgpu', message: 'navigator.gpu.requestAdapter() returned no adapter (WebGPU is blocked or there is no usable GPU driver).' });
    return;
  }
  state.gpu = true;
}

wire();
$<HTMLTextAreaElement>('data-text').value = SAMPLE_TEXT;
showMethodOptions();
refresh();
void checkWebGpu().then(refresh);
