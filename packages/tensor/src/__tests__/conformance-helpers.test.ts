/**
 * The conformance helpers free the inputs they made when the function under test
 * throws, so a failing kernel reports its own error and no leak errors on top of it.
 */
import { type BackendName, type Tensor, add } from '@webpeft/tensor';
import { initBackends, liveCounts } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { gradsOn, runOn, uniform } from './conformance.js';

let backends: BackendName[] = [];
beforeAll(async () => {
  backends = await initBackends();
});

describe.each(['cpu', 'webgpu'] as const)('conformance helpers on %s', (backend) => {
  const throwing = (a: Tensor, b: Tensor): Tensor => {
    add(a, b); // an intermediate that tidy must free too
    throw new Error('kernel failed');
  };

  it('runOn rethrows the error and leaves nothing alive', async ({ skip }) => {
    if (!backends.includes(backend)) skip('no WebGPU adapter here (CI requires one)');
    const before = liveCounts(backend);
    await expect(runOn(backend, throwing, [uniform([3, 4], 1), uniform([3, 4], 2)])).rejects.toThrow('kernel failed');
    expect(liveCounts(backend)).toEqual(before);
  });

  it('gradsOn rethrows the error and leaves nothing alive', async ({ skip }) => {
    if (!backends.includes(backend)) skip('no WebGPU adapter here (CI requires one)');
    const before = liveCounts(backend);
    await expect(gradsOn(backend, throwing, [uniform([3, 4], 3), uniform([3, 4], 4)])).rejects.toThrow('kernel failed');
    expect(liveCounts(backend)).toEqual(before);
  });
});
