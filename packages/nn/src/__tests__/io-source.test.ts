import { describe, expect, it } from 'vitest';
import { openSource, openTarget } from '../io/index.js';

const inBrowser = typeof window !== 'undefined';

describe('openSource / openTarget inputs', () => {
  it('File[] sources match plain picks by name and directory picks by path inside the directory', async () => {
    const plain = new File(['{"a": 1}'], 'config.json');
    const picked = new File([new Uint8Array([1, 2, 3])], 'model.safetensors');
    Object.defineProperty(picked, 'webkitRelativePath', { value: 'tiny-gpt2/model.safetensors' });
    const source = openSource([plain, picked]);
    expect(JSON.parse(await source.readText('config.json'))).toEqual({ a: 1 });
    expect([...(await source.readBytes('model.safetensors'))]).toEqual([1, 2, 3]);
    expect(await source.has('tokenizer.json')).toBe(false);
    await expect(source.readText('tokenizer.json')).rejects.toThrow(/no file 'tokenizer\.json'/);
  });

  it('http(s) strings and URLs become fetch sources with a directory base', () => {
    expect(openSource('https://example.org/models/tiny').name).toBe('https://example.org/models/tiny/');
    expect(openSource(new URL('https://example.org/m/')).name).toBe('https://example.org/m/');
  });

  it.runIf(inBrowser)('local paths in a browser fail at once, naming the alternatives', () => {
    expect(() => openSource('./SmolLM-135M')).toThrow(/local paths need Node; in a browser pass File objects/);
    expect(() => openTarget('./out')).toThrow(/use memoryTarget\(\)/);
  });
});
