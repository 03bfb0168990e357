/** How read_file and read_multiple_files answer: content blocks only, a metadata block before each file. */

export interface ContentBlockLike {
  type: string;
  text?: string;
  resource?: { uri?: string; blob?: string; text?: string; mimeType?: string };
}

export interface ReadMetadata {
  uri: string;
  size: number;
  etag: string;
  mimeType: string | null;
  encoding: 'utf-8' | 'base64';
  range?: { unit: 'bytes' | 'lines'; start: number; end: number };
  complete: boolean;
}

/** read_file: [metadata JSON, contents]. */
export function readFileParts(content: ContentBlockLike[]): { metadata: ReadMetadata; block: ContentBlockLike } {
  const [meta, block, ...rest] = content;
  if (meta?.type !== 'text' || block === undefined || rest.length > 0) {
    throw new Error(`not a read_file answer: ${JSON.stringify(content).slice(0, 300)}`);
  }
  return { metadata: JSON.parse(meta.text ?? '') as ReadMetadata, block };
}

export type BatchEntry =
  | ({ index: number; ok: true; block: ContentBlockLike } & ReadMetadata)
  | { index: number; ok: false; error: { code: string; message: string } };

/** read_multiple_files: per file, a metadata JSON block, followed by the contents when it was read. */
export function readBatchParts(content: ContentBlockLike[]): BatchEntry[] {
  const entries: BatchEntry[] = [];
  for (let i = 0; i < content.length; i++) {
    const meta = JSON.parse(content[i]?.text ?? '') as { index: number; ok: boolean };
    if (meta.ok) {
      const block = content[i + 1];
      if (!block) throw new Error(`entry ${meta.index} has no contents block`);
      entries.push({ ...(meta as ReadMetadata & { index: number; ok: true }), block });
      i += 1;
    } else {
      entries.push(meta as BatchEntry);
    }
  }
  return entries;
}
