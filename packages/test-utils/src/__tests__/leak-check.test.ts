import { type Tensor, tensor } from '@webpeft/tensor';
import { afterAll, describe, expect, it } from 'vitest';
import { initBackends } from '../backends.js';
import { LeakError, expectNoLeakSince, keepsStateAcrossTests, knownLeak, leakGrowth, leakSnapshot } from '../leak-check.js';

// The per-test leak check itself: the hook functions directly, then the wired-up setup
// file (a test that leaks must end up failed, which `it.fails` turns into a pass).
/** What the deliberately leaking tests below left alive, freed when the file ends. */
const leaked: Tensor[] = [];
afterAll(() => {
  for (const t of leaked) t.dispose();
});

describe('leak check', () => {
  it('names the live tensors and buffers a piece of code left behind, on each backend', async () => {
    const names = await initBackends();
    for (const backend of names) {
      const before = leakSnapshot();
      const kept = tensor([Math.random(), Math.random(), Math.random()], [3], { backend });
      const grown = leakGrowth(before, leakSnapshot());
      expect(grown).toEqual([`live tensors ${before.tensors} -> ${before.tensors + 1} (+1)`, expect.stringMatching(new RegExp(`^${backend} live buffers \\d+ -> \\d+ \\(\\+1, 12 bytes\\)$`))]);
      expect(() => expectNoLeakSince(before, `test 'x'`)).toThrow(LeakError);
      expect(() => expectNoLeakSince(before, `test 'x'`)).toThrow(/test 'x' leaked: live tensors .* \(\+1\); .* live buffers/);
      kept.dispose();
      expect(leakGrowth(before, leakSnapshot())).toEqual([]);
      expect(() => expectNoLeakSince(before, `test 'x'`)).not.toThrow();
    }
  });

  it('counts a backend initialised after the snapshot from zero', () => {
    const after = { tensors: 5, backends: { cpu: { buffers: 2, bytes: 8 } } };
    expect(leakGrowth({ tensors: 5, backends: {} }, after)).toEqual(['cpu live buffers 0 -> 2 (+2, 8 bytes)']);
    expect(leakGrowth(after, { tensors: 4, backends: { cpu: { buffers: 1, bytes: 4 } } })).toEqual([]);
  });

  // Fails in the setup file's check after the test body, which is what `fails` expects;
  // without the setup file in vitest.config.ts this test is reported failed.
  it.fails('a test that leaks one tensor fails through the setup file', async () => {
    await initBackends();
    leaked.push(tensor([Math.random()], [1], { backend: 'cpu' }));
  });

  it("cleanup in the test's own onTestFinished callbacks counts", async ({ onTestFinished }) => {
    await initBackends();
    const t = tensor([Math.random()], [1], { backend: 'cpu' });
    onTestFinished(() => t.dispose());
  });

  describe('opted out', () => {
    keepsStateAcrossTests('the first test keeps a tensor for the second one, which disposes it');
    let shared: Tensor | null = null;

    it('keeps a tensor alive past its end', async () => {
      await initBackends();
      shared = tensor([Math.random()], [1], { backend: 'cpu' });
    });

    it('uses and disposes it', async () => {
      expect((await shared!.data())[0]).toBeGreaterThanOrEqual(0);
      shared!.dispose();
    });
  });

  it.fails('the check is back on after the opted-out block', async () => {
    await initBackends();
    leaked.push(tensor([Math.random()], [1], { backend: 'cpu' }));
  });

  it('a test marked knownLeak passes while it leaks', async () => {
    await initBackends();
    knownLeak('this test keeps one tensor on purpose');
    leaked.push(tensor([Math.random()], [1], { backend: 'cpu' }));
  });

  it.fails('a test marked knownLeak fails once it no longer leaks', () => {
    knownLeak('nothing leaks here any more');
  });

  it('rejects an opt-out without a reason', () => {
    expect(() => knownLeak('')).toThrow(/name the defect/);
    expect(() => keepsStateAcrossTests(' ')).toThrow(/give the reason/);
  });
});
