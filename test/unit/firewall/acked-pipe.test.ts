/**
 * AckedPipe with `cat` as the long-lived process: a batch comes back with the lines before
 * its acknowledgement; a failed batch starts a new process for the next one; once closed,
 * no batch starts one again (a late change after a stop would keep the daemon alive).
 */
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { AckedPipe, PipeError } from '../../../src/firewall/acked-pipe.js';

/** `cat` echoes each batch, and the acknowledgement line with it; the marker stands in for an error line. */
function catPipe(): AckedPipe {
  return new AckedPipe({ argv: ['cat'], ackRequest: (n) => `ack ${n}`, isAck: (line, n) => line === `ack ${n}`, timeoutMs: 10_000 });
}

/** The `cat` processes that are children of this one. */
async function cats(): Promise<number> {
  const { stdout } = await execa('pgrep', ['-P', String(process.pid), '-x', 'cat'], { reject: false });
  return stdout.split('\n').filter(Boolean).length;
}

describe('AckedPipe', () => {
  it('answers each batch with the lines before its acknowledgement, from one process', async () => {
    const pipe = catPipe();
    try {
      expect(await pipe.send('one\ntwo')).toEqual(['one', 'two']);
      expect(await pipe.send('three')).toEqual(['three']);
      expect(await cats()).toBe(1);
    } finally {
      pipe.close();
    }
  });

  it('once closed, fails every later batch at once and starts no process again', async () => {
    const pipe = catPipe();
    await pipe.send('before');
    pipe.close();
    await expect(pipe.send('after')).rejects.toThrow(PipeError);
    await expect(pipe.send('after')).rejects.toThrow('closed');
    for (let i = 0; i < 50 && (await cats()) > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(await cats()).toBe(0);
  });
});
