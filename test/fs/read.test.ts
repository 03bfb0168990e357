import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type ErrorCode, isAbortError, McpdError } from '../../src/errors.js';
import { looksBinary, type ReadOptions, type ReadResult, readChunks, readTarget } from '../../src/fs/files.js';
import type { PolicyEngine } from '../../src/policy/engine.js';
import type { Target } from '../../src/policy/types.js';
import { allowedTarget, policyOver } from '../helpers/policy.js';
import { tempDir } from '../helpers/workspace.js';

const CHUNK = 64 * 1024;
const SNIFF = 8192;
const BIG = 10 * 1024 * 1024;

let dir: string;
let policy: PolicyEngine;
let cleanup: () => Promise<void>;

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('mcpd-read-'));
  policy = await policyOver(dir);
});

afterEach(async () => {
  await cleanup();
});

function targetOf(relPath: string): Promise<Target> {
  return allowedTarget(policy, 'read', relPath);
}

/** Writes `name` and returns its read target. */
async function file(name: string, contents: string | Buffer): Promise<Target> {
  await writeFile(join(dir, name), contents);
  return targetOf(name);
}

async function read(target: Target, range: ReadOptions['range'], maxBytes = BIG): Promise<ReadResult> {
  return readTarget(target, { range, maxBytes });
}

function lines(target: Target, start: number, end?: number, maxBytes = BIG): Promise<ReadResult> {
  return read(target, { kind: 'lines', start, end }, maxBytes);
}

function bytes(target: Target, offset: number, length?: number, maxBytes = BIG): Promise<ReadResult> {
  return read(target, { kind: 'bytes', offset, length }, maxBytes);
}

function asText(result: ReadResult): Extract<ReadResult, { kind: 'text' }> {
  if (result.kind !== 'text') throw new Error(`expected text, got ${result.kind}`);
  return result;
}

function asBinary(result: ReadResult): Extract<ReadResult, { kind: 'binary' }> {
  if (result.kind !== 'binary') throw new Error(`expected binary, got ${result.kind}`);
  return result;
}

async function rejectsWith(promise: Promise<unknown>, code: ErrorCode): Promise<McpdError> {
  const error = await promise.then(
    () => {
      throw new Error(`expected ${code}, but it succeeded`);
    },
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(McpdError);
  expect((error as McpdError).code).toBe(code);
  return error as McpdError;
}

async function openDescriptors(): Promise<number> {
  return (await readdir('/proc/self/fd')).length;
}

describe('readTarget: text', () => {
  it('reads a whole text file', async () => {
    const text = 'héllo, wörld €\nsecond line\n';
    const result = asText(await read(await file('a.txt', text), { kind: 'whole' }));
    expect(result.text).toBe(text);
    expect(result.complete).toBe(true);
    expect(result.returned).toEqual({ unit: 'bytes', start: 0, end: Buffer.byteLength(text) });
    expect(result.info).toMatchObject({ path: 'a.txt', type: 'file', size: Buffer.byteLength(text) });
    expect(result.info.mimeType).toBe('text/plain');
  });

  it('reads an empty file as complete empty text', async () => {
    const result = asText(await read(await file('empty.txt', ''), { kind: 'whole' }));
    expect(result).toMatchObject({ text: '', complete: true, returned: { unit: 'bytes', start: 0, end: 0 } });
  });

  it('reads byte ranges, clamped to the file', async () => {
    const target = await file('digits.txt', '0123456789');
    expect(asText(await bytes(target, 2, 3))).toMatchObject({
      text: '234',
      returned: { unit: 'bytes', start: 2, end: 5 },
      complete: false,
    });
    expect(asText(await bytes(target, 7))).toMatchObject({
      text: '789',
      returned: { unit: 'bytes', start: 7, end: 10 },
      complete: false,
    });
    expect(asText(await bytes(target, 8, 100))).toMatchObject({ text: '89', returned: { start: 8, end: 10 } });
    expect(asText(await bytes(target, 100, 5))).toMatchObject({ text: '', returned: { start: 10, end: 10 } });
    expect(asText(await bytes(target, 0, 100))).toMatchObject({ text: '0123456789', complete: true });
  });

  describe('line ranges', () => {
    const FIVE = 'one\ntwo\nthree\nfour\nfive';

    it('first lines, middle lines, the last line without a trailing newline', async () => {
      const target = await file('five.txt', FIVE);
      expect(asText(await lines(target, 1, 2))).toMatchObject({
        text: 'one\ntwo\n',
        returned: { unit: 'lines', start: 1, end: 2 },
        complete: false,
      });
      expect(asText(await lines(target, 1, 1))).toMatchObject({ text: 'one\n', returned: { start: 1, end: 1 } });
      expect(asText(await lines(target, 2, 4))).toMatchObject({
        text: 'two\nthree\nfour\n',
        returned: { start: 2, end: 4 },
      });
      expect(asText(await lines(target, 5, 5))).toMatchObject({ text: 'five', returned: { start: 5, end: 5 } });
      expect(asText(await lines(target, 4))).toMatchObject({
        text: 'four\nfive',
        returned: { start: 4, end: 5 },
        complete: false,
      });
      expect(asText(await lines(target, 1))).toMatchObject({
        text: FIVE,
        returned: { start: 1, end: 5 },
        complete: true,
      });
    });

    it('ranges past the end return what exists, and nothing when they start past it', async () => {
      const target = await file('five.txt', FIVE);
      expect(asText(await lines(target, 3, 100))).toMatchObject({
        text: 'three\nfour\nfive',
        returned: { start: 3, end: 5 },
        complete: false,
      });
      // An empty range is reported as [start, start - 1].
      expect(asText(await lines(target, 6, 10))).toMatchObject({ text: '', returned: { start: 6, end: 5 } });
      expect(asText(await lines(target, 50))).toMatchObject({ text: '', returned: { start: 50, end: 49 } });
    });

    it('a final newline ends the last line; it does not start an extra one', async () => {
      const target = await file('newline.txt', 'a\nb\nc\n');
      expect(asText(await lines(target, 2, 3))).toMatchObject({ text: 'b\nc\n', returned: { start: 2, end: 3 } });
      expect(asText(await lines(target, 2, 9))).toMatchObject({ text: 'b\nc\n', returned: { start: 2, end: 3 } });
      expect(asText(await lines(target, 2))).toMatchObject({ text: 'b\nc\n', returned: { start: 2, end: 3 } });
      expect(asText(await lines(target, 4))).toMatchObject({ text: '', returned: { start: 4, end: 3 } });
    });

    it('a line range that covers the whole file is reported complete', async () => {
      // Byte ranges covering the whole file say complete: true; line ranges should agree.
      const target = await file('five.txt', FIVE);
      const result = asText(await lines(target, 1, 100));
      expect(result.text).toBe(FIVE);
      expect(result.returned).toEqual({ unit: 'lines', start: 1, end: 5 });
      expect(result.complete).toBe(true);
    });

    it('keeps CRLF line endings byte for byte and does not split on a lone CR', async () => {
      const target = await file('crlf.txt', 'alpha\r\nbeta\r\ngam\rma\r\ndelta');
      expect(asText(await lines(target, 1, 1)).text).toBe('alpha\r\n');
      expect(asText(await lines(target, 2, 3))).toMatchObject({
        text: 'beta\r\ngam\rma\r\n',
        returned: { start: 2, end: 3 },
      });
      expect(asText(await lines(target, 4))).toMatchObject({ text: 'delta', returned: { start: 4, end: 4 } });
    });

    it('lines across a 64 KiB read-chunk boundary', async () => {
      // 100-byte lines: line 656 covers bytes 65500..65599 and straddles the first chunk boundary.
      const all = Array.from({ length: 1500 }, (_, i) => `${`line ${i + 1} `.padEnd(99, '.')}\n`);
      expect(all.slice(0, 655).join('').length).toBeLessThan(CHUNK);
      expect(all.slice(0, 656).join('').length).toBeGreaterThan(CHUNK);
      const target = await file('hundred.txt', all.join(''));
      expect(asText(await lines(target, 656, 656)).text).toBe(all[655]);
      expect(asText(await lines(target, 650, 660))).toMatchObject({
        text: all.slice(649, 660).join(''),
        returned: { start: 650, end: 660 },
      });
      expect(asText(await lines(target, 1300, 1500))).toMatchObject({
        text: all.slice(1299).join(''),
        returned: { start: 1300, end: 1500 },
      });

      // 64-byte lines: line 1025 starts exactly at the boundary.
      const aligned = Array.from({ length: 2100 }, (_, i) => `${`row ${i + 1}`.padEnd(63, '-')}\n`);
      expect(aligned.slice(0, 1024).join('').length).toBe(CHUNK);
      const alignedTarget = await file('aligned.txt', aligned.join(''));
      expect(asText(await lines(alignedTarget, 1024, 1025)).text).toBe(aligned.slice(1023, 1025).join(''));
      expect(asText(await lines(alignedTarget, 1025, 1025)).text).toBe(aligned[1024]);
      expect(asText(await lines(alignedTarget, 1024, 1024)).text).toBe(aligned[1023]);
    });

    it('a single line longer than several chunks', async () => {
      const long = `${'x'.repeat(3 * CHUNK + 123)}\n`;
      const target = await file('long.txt', `first\n${long}third\n`);
      expect(asText(await lines(target, 2, 2)).text).toBe(long);
      expect(asText(await lines(target, 3)).text).toBe('third\n');
      expect(asText(await lines(target, 1, 3)).text).toBe(`first\n${long}third\n`);
      const noNewline = await file('tail.txt', `first\n${'y'.repeat(2 * CHUNK + 7)}`);
      expect(asText(await lines(noNewline, 2))).toMatchObject({
        text: 'y'.repeat(2 * CHUNK + 7),
        returned: { start: 2, end: 2 },
      });
    });
  });
});

describe('readTarget: binary', () => {
  it('a file with NUL bytes is binary and comes back byte for byte', async () => {
    const data = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0xff, 0x01]);
    const target = await file('image.png', data);
    const result = asBinary(await read(target, { kind: 'whole' }));
    expect(result.data.equals(data)).toBe(true);
    expect(result.mimeType).toBe('image/png');
    expect(result.info.size).toBe(data.length);

    expect(asBinary(await bytes(target, 2, 4)).data.equals(data.subarray(2, 6))).toBe(true);
    expect(asBinary(await bytes(target, 10)).data.equals(data.subarray(10))).toBe(true);
    expect(asBinary(await bytes(target, 12, 100)).data.equals(data.subarray(12))).toBe(true);
    expect(asBinary(await bytes(target, 100, 4)).data.length).toBe(0);
    await rejectsWith(lines(target, 1, 2), 'INVALID_ARGUMENT');
  });

  it('invalid UTF-8 without any NUL is binary; an unknown extension is application/octet-stream', async () => {
    const data = Buffer.from([0x68, 0x69, 0x20, 0xff, 0xfe, 0x41, 0x42, 0xc0, 0x80]);
    const result = asBinary(await read(await file('blob.unknownext', data), { kind: 'whole' }));
    expect(result.data.equals(data)).toBe(true);
    expect(result.mimeType).toBe('application/octet-stream');
  });

  it('text whose multibyte character straddles the sniffed prefix is still text', async () => {
    const text = `${'a'.repeat(SNIFF - 1)}${'€'.repeat(10)}\n`;
    const result = asText(await read(await file('euro.txt', text), { kind: 'whole' }));
    expect(result.text).toBe(text);
  });
});

describe('readTarget: limits and kinds', () => {
  it('a file above the cap is TOO_LARGE and the message says how to read it in parts', async () => {
    const target = await file('big.txt', 'z'.repeat(1000));
    const error = await rejectsWith(read(target, { kind: 'whole' }, 100), 'TOO_LARGE');
    expect(error.message).toContain('offset/length');
    expect(error.message).toContain('startLine/endLine');
    expect(error.details).toEqual({ size: 1000, limit: 100 });

    expect(asText(await bytes(target, 900, 100, 100)).text).toBe('z'.repeat(100));
    await rejectsWith(bytes(target, 0, 101, 100), 'TOO_LARGE');
    expect(asText(await bytes(target, 950, 500, 100)).text).toBe('z'.repeat(50));

    const manyLines = await file('lines.txt', 'abcdefghi\n'.repeat(100));
    expect(asText(await lines(manyLines, 1, 10, 100)).text).toBe('abcdefghi\n'.repeat(10));
    const linesError = await rejectsWith(lines(manyLines, 1, 11, 100), 'TOO_LARGE');
    expect(linesError.message).toContain('offset/length');
    expect(linesError.message).toContain('startLine/endLine');

    await rejectsWith(read(await file('big.bin', Buffer.alloc(1000)), { kind: 'whole' }, 100), 'TOO_LARGE');
  });

  it('a directory is NOT_A_FILE', async () => {
    await mkdir(join(dir, 'sub'));
    const target = await targetOf('sub');
    expect(target.kind).toBe('directory');
    await rejectsWith(read(target, { kind: 'whole' }), 'NOT_A_FILE');
  });
});

describe('readChunks', () => {
  function pattern(size: number): Buffer {
    const data = Buffer.alloc(size);
    for (let i = 0; i < size; i++) data[i] = (i * 31 + (i >> 8)) & 0xff;
    return data;
  }

  it('yields every byte in order', async () => {
    const data = pattern(3 * CHUNK + 1234);
    const target = await file('data.bin', data);
    const copies: Buffer[] = [];
    const offsets: number[] = [];
    for await (const { chunk, offset, size } of readChunks(target, CHUNK)) {
      expect(size).toBe(data.length);
      expect(offset).toBe(copies.reduce((sum, piece) => sum + piece.length, 0));
      offsets.push(offset);
      copies.push(Buffer.from(chunk));
    }
    expect(offsets).toEqual([0, CHUNK, 2 * CHUNK, 3 * CHUNK]);
    expect(Buffer.concat(copies).equals(data)).toBe(true);
  });

  it('chunks the consumer keeps stay intact after it moves on', async () => {
    const data = pattern(4 * 4096 + 10);
    const target = await file('kept.bin', data);
    const kept: Buffer[] = [];
    for await (const { chunk } of readChunks(target, 4096)) kept.push(chunk);
    expect(kept).toHaveLength(5);
    expect(Buffer.concat(kept).equals(data)).toBe(true);
  });

  it('an empty file yields nothing; a directory is NOT_A_FILE', async () => {
    const seen: number[] = [];
    for await (const { chunk } of readChunks(await file('empty.bin', ''), CHUNK)) seen.push(chunk.length);
    expect(seen).toEqual([]);

    await mkdir(join(dir, 'sub'));
    const iterate = async () => {
      for await (const _ of readChunks(await targetOf('sub'), CHUNK)) {
        // nothing
      }
    };
    await rejectsWith(iterate(), 'NOT_A_FILE');
  });

  it('stops with an AbortError once the signal is aborted, and closes the file', async () => {
    const target = await file('abort.bin', pattern(8 * 1024));
    const before = await openDescriptors();
    const controller = new AbortController();
    const offsets: number[] = [];
    const consume = async () => {
      for await (const { offset } of readChunks(target, 1024, controller.signal)) {
        offsets.push(offset);
        if (offsets.length === 2) controller.abort();
      }
    };
    const error = await consume().then(
      () => null,
      (reason: unknown) => reason,
    );
    expect(error).not.toBeNull();
    expect(isAbortError(error)).toBe(true);
    expect((error as Error).name).toBe('AbortError');
    expect(offsets).toEqual([0, 1024]);
    expect(await openDescriptors()).toBe(before);

    const aborted = AbortSignal.abort();
    const neverStarted: number[] = [];
    const early = async () => {
      for await (const { offset } of readChunks(target, 1024, aborted)) neverStarted.push(offset);
    };
    const earlyError = await early().then(
      () => null,
      (reason: unknown) => reason,
    );
    expect(isAbortError(earlyError)).toBe(true);
    expect(neverStarted).toEqual([]);
    expect(await openDescriptors()).toBe(before);
  });
});

describe('looksBinary', () => {
  it('plain and multibyte UTF-8 text is text, even with a character cut at the sample boundary', () => {
    expect(looksBinary(new Uint8Array())).toBe(false);
    expect(looksBinary(Buffer.from('plain ascii\n'))).toBe(false);
    expect(looksBinary(Buffer.from('grüße, 日本語, emoji 😀\r\n'))).toBe(false);
    for (const char of ['é', '€', '😀']) {
      const whole = Buffer.from(`${'a'.repeat(SNIFF - 1)}${char}`);
      for (let cut = 1; cut < Buffer.byteLength(char); cut++) {
        // The sample ends `cut` bytes into the character.
        expect(looksBinary(whole.subarray(0, SNIFF - 1 + cut)), `${char} cut after ${cut} byte(s)`).toBe(false);
      }
      expect(looksBinary(whole.subarray(0, SNIFF))).toBe(false);
    }
  });

  it('NUL bytes and invalid UTF-8 are binary', () => {
    expect(looksBinary(Buffer.from('text with a \0 in it'))).toBe(true);
    expect(looksBinary(Buffer.from([0x00]))).toBe(true);
    expect(looksBinary(Buffer.from([0x41, 0xff, 0x42]))).toBe(true);
    expect(looksBinary(Buffer.from([0xc0, 0x80]))).toBe(true); // overlong encoding
    expect(looksBinary(Buffer.from([0xed, 0xa0, 0x80]))).toBe(true); // UTF-16 surrogate
    expect(looksBinary(Buffer.from([0x80, 0x41]))).toBe(true); // stray continuation byte
    expect(looksBinary(Buffer.concat([Buffer.from('€'.repeat(100)), Buffer.from([0xe2, 0x41])]))).toBe(true);
  });
});
