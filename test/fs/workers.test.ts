import { describe, expect, it } from 'vitest';
import { WorkerPool } from '../../src/fs/workers.js';
import { until } from '../helpers/wait.js';

const ECHO = `
const { parentPort } = require('node:worker_threads');
parentPort.on('message', (message) => parentPort.postMessage(message));
`;

describe('WorkerPool', () => {
  it('stops a worker left idle, and starts one again for the next call', async () => {
    const pool = new WorkerPool(ECHO, 2, 50);
    expect(await pool.call<{ id: number; value: string }>({ value: 'first' })).toMatchObject({ value: 'first' });
    expect(pool.workers).toBe(1);
    await until(() => pool.workers === 0, { what: 'the idle worker to be stopped' });
    expect(await pool.call<{ id: number; value: string }>({ value: 'again' })).toMatchObject({ value: 'again' });
    expect(pool.workers).toBe(1);
    await pool.close();
  });
});
