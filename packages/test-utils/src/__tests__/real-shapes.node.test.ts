import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { REAL_SHAPES_COMMAND, RealShapesMissingError, realShapeCheckpoint, realShapeProblem } from '../real-shapes.js';

// The cache helper itself, on a fake cache folder: a missing or incomplete cache is a
// failure in CI and with WEBPEFT_REAL_SHAPES=1, and a skip naming the build command
// elsewhere, never a silent pass.
const saved = { dir: process.env.WEBPEFT_REAL_SHAPES_DIR, required: process.env.WEBPEFT_REAL_SHAPES, ci: process.env.CI };
let dir = '';
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'real-shapes-'));
  process.env.WEBPEFT_REAL_SHAPES_DIR = dir;
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
  for (const [key, value] of [['WEBPEFT_REAL_SHAPES_DIR', saved.dir], ['WEBPEFT_REAL_SHAPES', saved.required], ['CI', saved.ci]] as const) {
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  }
});

/** A context whose skip records its note and throws, as vitest's does. */
function recordingContext(): { notes: string[]; skip(note?: string): never } {
  const notes: string[] = [];
  return {
    notes,
    skip(note?: string): never {
      notes.push(note ?? '');
      throw new Error('skipped');
    },
  };
}

/** realShapeCheckpoint('gpt2', 'f32') on the empty cache: the error it throws, or null, and the skip notes. */
function missing(): { error: unknown; notes: string[] } {
  const ctx = recordingContext();
  try {
    realShapeCheckpoint('gpt2', 'f32', ctx);
  } catch (e) {
    return { error: e, notes: ctx.notes };
  }
  return { error: null, notes: ctx.notes };
}

describe('realShapeCheckpoint', () => {
  for (const [label, env] of [
    ['in CI (CI=true)', { CI: 'true', WEBPEFT_REAL_SHAPES: undefined }],
    ['with WEBPEFT_REAL_SHAPES=1 outside CI', { CI: undefined, WEBPEFT_REAL_SHAPES: '1' }],
  ] as const) {
    it(`${label}, a missing cache throws RealShapesMissingError naming the folder and the command`, () => {
      for (const [key, value] of Object.entries(env)) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
      const { error, notes } = missing();
      expect(error).toBeInstanceOf(RealShapesMissingError);
      expect((error as Error).message).toContain(dir);
      expect((error as Error).message).toContain(REAL_SHAPES_COMMAND);
      expect(notes).toEqual([]);
    });
  }

  it('outside CI without WEBPEFT_REAL_SHAPES=1 (CI unset or CI=false), a missing cache skips the test with the command', () => {
    delete process.env.WEBPEFT_REAL_SHAPES;
    for (const ci of [undefined, 'false']) {
      if (ci === undefined) delete process.env.CI;
      else process.env.CI = ci;
      const ctx = recordingContext();
      expect(() => realShapeCheckpoint('smollm2-135m', 'bf16', ctx)).toThrow('skipped');
      expect(ctx.notes).toHaveLength(1);
      expect(ctx.notes[0]).toContain(REAL_SHAPES_COMMAND);
    }
  });

  it('names a manifest of another script version, a missing file and a wrong size; accepts a complete one', () => {
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ script: 'not-this-one', models: [], files: {} }));
    expect(realShapeProblem('gpt2', 'f32')).toContain('another version of tools/golden/real_shapes.py');
    // The manifest's hash, as the script computes it: SHA-256 over the script, then common.py.
    const h = createHash('sha256');
    for (const f of ['real_shapes.py', 'common.py']) h.update(readFileSync(fileURLToPath(new URL(`../../../../tools/golden/${f}`, import.meta.url))));
    const files = { 'gpt2/f32/config.json': 2, 'gpt2/f32/model.safetensors': 5 };
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ script: h.digest('hex'), models: ['gpt2'], files }));
    mkdirSync(join(dir, 'gpt2', 'f32'), { recursive: true });
    writeFileSync(join(dir, 'gpt2', 'f32', 'config.json'), '{}');
    expect(realShapeProblem('gpt2', 'f32')).toBe(`${join(dir, 'gpt2', 'f32', 'model.safetensors')} is missing`);
    writeFileSync(join(dir, 'gpt2', 'f32', 'model.safetensors'), 'abc');
    expect(realShapeProblem('gpt2', 'f32')).toContain('has 3 bytes, the manifest says 5');
    expect(realShapeProblem('gpt2', 'bf16')).toContain('lists no files for gpt2/bf16');
    writeFileSync(join(dir, 'gpt2', 'f32', 'model.safetensors'), 'abcde');
    expect(realShapeProblem('gpt2', 'f32')).toBeNull();
    expect(realShapeCheckpoint('gpt2', 'f32', recordingContext())).toBe(join(dir, 'gpt2', 'f32'));
  });
});
