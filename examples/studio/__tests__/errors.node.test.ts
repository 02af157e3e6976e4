/** What the library throws, sorted into the failures the studio page explains. */
import { SafetensorsError, SftDataError } from '@webpeft/nn';
import { NoAdapterError, OutOfMemoryError } from '@webpeft/tensor';
import { describe, expect, it } from 'vitest';
import { MalformedFileError } from '../src/data.ts';
import { StudioError, describeError } from '../src/errors.ts';

describe('describeError', () => {
  it('keeps the memory by tag of an out-of-memory failure', () => {
    const bytesByTag = { weights: 9_633_792, grads: 442_368, optimizer: 884_736, activations: 1_073_741_824, quant: 0, other: 0 };
    const e = new OutOfMemoryError('webgpu: cannot allocate 1.00 GiB for matMul [64,4096,4096]', { liveBytes: 1_084_702_720, peakBytes: 1_084_702_720, liveTensors: 310, liveBuffers: 298, bytesByTag });
    expect(describeError(e)).toEqual({ kind: 'out-of-memory', message: 'webgpu: cannot allocate 1.00 GiB for matMul [64,4096,4096]', memoryByTag: bytesByTag });
  });

  it('sorts the other failures by kind and keeps their messages', () => {
    expect(describeError(new NoAdapterError('no WebGPU adapter'))).toEqual({ kind: 'no-webgpu', message: 'no WebGPU adapter' });
    expect(describeError(new Error('navigator.gpu is undefined: this browser has no WebGPU')).kind).toBe('no-webgpu');
    expect(describeError(new Error('causalLMFromConfig: model_type "bert" is not supported (supported: gpt2, llama)')).kind).toBe('unsupported-model');
    expect(describeError(new SafetensorsError('model.safetensors: header length 200 exceeds the file', 'model.safetensors')).kind).toBe('malformed-file');
    expect(describeError(new MalformedFileError('adapter.zip', 0, 'not a readable zip file'))).toEqual({ kind: 'malformed-file', message: 'adapter.zip: not a readable zip file' });
    expect(describeError(new SftDataError('d.jsonl', 3, 'not valid JSON'))).toEqual({ kind: 'malformed-file', message: 'd.jsonl:3: not valid JSON' });
    expect(describeError(new SyntaxError('Unexpected token } in JSON at position 12')).kind).toBe('malformed-file');
    expect(describeError(new RangeError('the training text has 15 tokens: need more than 16'))).toEqual({ kind: 'invalid-setting', message: 'the training text has 15 tokens: need more than 16' });
    expect(describeError(new StudioError('no-adapter', 'no adapter yet'))).toEqual({ kind: 'no-adapter', message: 'no adapter yet' });
    expect(describeError(new Error('GPU device lost'))).toEqual({ kind: 'error', message: 'GPU device lost' });
    expect(describeError('a string')).toEqual({ kind: 'error', message: 'a string' });
  });
});
