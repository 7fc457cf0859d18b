import { describe, expect, it } from 'vitest';
import type { CheckpointStore } from '../../src/store/checkpoint-store.js';

/**
 * The behaviour every CheckpointStore implementation must have. Each implementation's test file
 * calls this with a factory that returns a fresh, empty store (and optionally a reopen of the same one).
 */
export function checkpointStoreContract(
  name: string,
  make: () => Promise<{ store: CheckpointStore; reopen: () => Promise<CheckpointStore>; cleanup: () => Promise<void> }>,
): void {
  const bytes = (n: number, seed: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

  describe(`CheckpointStore contract: ${name}`, () => {
    it('returns null for a stage never saved, and an empty list', async () => {
      const { store, cleanup } = await make();
      try {
        expect(await store.load('distill')).toBeNull();
        expect(await store.list()).toEqual([]);
      } finally {
        await cleanup();
      }
    });

    it('round-trips model bytes and meta exactly, across a reopen', async () => {
      const { store, reopen, cleanup } = await make();
      try {
        const model = { modelJson: JSON.stringify({ format: 'layers-model', n: 1 }), weights: bytes(70_001, 3) };
        await store.save('distill', { meta: { seconds: 1.5, params: 42, nested: { a: [1, 2] } }, model });
        await store.save('teacher', { meta: { figures: { p95: 2 } }, model: null });
        const again = await reopen();
        const got = await again.load('distill');
        expect(got?.meta).toEqual({ seconds: 1.5, params: 42, nested: { a: [1, 2] } });
        expect(got?.model?.modelJson).toBe(model.modelJson);
        expect(Buffer.from(got!.model!.weights).equals(Buffer.from(model.weights))).toBe(true);
        expect((await again.load('teacher'))?.model).toBeNull();
        expect(await again.list()).toEqual(['distill', 'teacher']);
      } finally {
        await cleanup();
      }
    });

    it('save replaces, remove deletes one stage, clear deletes all', async () => {
      const { store, cleanup } = await make();
      try {
        await store.save('prune-000', { meta: { i: 0 }, model: { modelJson: '{}', weights: bytes(10, 1) } });
        await store.save('prune-000', { meta: { i: 1 }, model: { modelJson: '{"b":1}', weights: bytes(5, 2) } });
        await store.save('prune-001', { meta: { i: 2 }, model: null });
        const got = await store.load('prune-000');
        expect(got?.meta).toEqual({ i: 1 });
        expect(got?.model?.weights.byteLength).toBe(5);
        await store.remove('prune-000');
        await store.remove('never-saved');
        expect(await store.list()).toEqual(['prune-001']);
        await store.clear();
        expect(await store.list()).toEqual([]);
        expect(await store.load('prune-001')).toBeNull();
      } finally {
        await cleanup();
      }
    });

    it('lists stage names in ascending order', async () => {
      const { store, cleanup } = await make();
      try {
        for (const s of ['prune-002', 'distill', 'prune-000', 'lighten', 'prune-001']) await store.save(s, { meta: s, model: null });
        expect(await store.list()).toEqual(['distill', 'lighten', 'prune-000', 'prune-001', 'prune-002']);
      } finally {
        await cleanup();
      }
    });
  });
}
