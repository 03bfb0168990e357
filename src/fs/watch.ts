import { createHash } from 'node:crypto';
import { readFileSync, watch as watchDirectory } from 'node:fs';
import { dirname } from 'node:path';
import { type FSWatcher, watch } from 'chokidar';
import { isWithin, relativeWithin } from '../policy/paths.js';
import type { Root } from '../policy/types.js';

export type ChangeKind = 'created' | 'changed' | 'deleted';

export interface FileChange {
  readonly root: Root;
  /** Canonical root-relative path. */
  readonly relPath: string;
  readonly kind: ChangeKind;
  readonly isDirectory: boolean;
  /** What the entry is now, as versionOf() says (see cluster/changeBus.ts). */
  readonly version: string;
}

/** An entry's version in change reports: `gone`, `dir`, or a file's size and whole milliseconds of mtime. */
export function versionOf(entry: { size: number; mtimeMs: number; isDirectory: boolean } | null): string {
  if (entry === null) return 'gone';
  return entry.isDirectory ? 'dir' : `${entry.size}:${Math.floor(entry.mtimeMs)}`;
}

export interface WatcherOptions {
  readonly roots: readonly Root[];
  /** Collapse bursts of events for one path into one change. */
  readonly debounceMs: number;
  /** Subtrees never watched at all (excluded directories, such as .git). */
  readonly ignore: (root: Root, relPath: string) => boolean;
  /** Reports watcher failures (ENOSPC on inotify limits, say); watching is best effort. */
  readonly onError?: (error: Error) => void;
}

type Listener = (change: FileChange) => void;

/**
 * Watches every root while at least one listener is subscribed, and not otherwise: a large tree
 * costs inotify watches and a scan, so nobody pays for it until someone listens.
 */
export class RootWatcher {
  private readonly listeners = new Set<Listener>();
  private watcher: FSWatcher | undefined;
  private readonly pending = new Map<string, { change: FileChange; timer: NodeJS.Timeout }>();
  private ready: Promise<void> = Promise.resolve();

  constructor(private readonly options: WatcherOptions) {}

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    if (!this.watcher) this.start();
    let active = true;
    return () => {
      if (!active) return;
      active = false;
      this.listeners.delete(listener);
      if (this.listeners.size === 0) void this.stop();
    };
  }

  /** Resolves once the initial scan is done and changes are being reported. */
  whenReady(): Promise<void> {
    return this.ready;
  }

  get listening(): boolean {
    return this.watcher !== undefined;
  }

  async close(): Promise<void> {
    this.listeners.clear();
    await this.stop();
  }

  private start(): void {
    const { roots } = this.options;
    const watcher = watch(
      roots.map((root) => root.canonicalPath),
      {
        ignoreInitial: true,
        followSymlinks: false,
        // The stats of what was added or changed: its version, to recognise a change reported twice.
        alwaysStat: true,
        ignored: (path: string) => {
          const located = this.locate(path);
          return located ? located.relPath !== '' && this.options.ignore(located.root, located.relPath) : false;
        },
      },
    );
    this.watcher = watcher;
    this.ready = new Promise((resolve) => watcher.once('ready', () => resolve()));
    const on = (kind: ChangeKind, isDirectory: boolean) => (path: string, stats?: { size: number; mtimeMs: number }) =>
      this.emit(
        path,
        kind,
        isDirectory,
        kind === 'deleted' ? 'gone' : stats ? versionOf({ size: stats.size, mtimeMs: stats.mtimeMs, isDirectory }) : '',
      );
    watcher
      .on('add', on('created', false))
      .on('addDir', on('created', true))
      .on('change', on('changed', false))
      .on('unlink', on('deleted', false))
      .on('unlinkDir', on('deleted', true))
      .on('error', (error) => this.options.onError?.(error instanceof Error ? error : new Error(String(error))));
  }

  private async stop(): Promise<void> {
    const watcher = this.watcher;
    this.watcher = undefined;
    for (const { timer } of this.pending.values()) clearTimeout(timer);
    this.pending.clear();
    await watcher?.close();
  }

  private locate(path: string): { root: Root; relPath: string } | undefined {
    for (const root of this.options.roots) {
      if (isWithin(root.canonicalPath, path)) return { root, relPath: relativeWithin(root.canonicalPath, path) };
    }
    return undefined;
  }

  private emit(path: string, kind: ChangeKind, isDirectory: boolean, version: string): void {
    const located = this.locate(path);
    if (!located || located.relPath === '') return;
    const key = `${located.root.name}\0${located.relPath}`;
    const previous = this.pending.get(key);
    if (previous) clearTimeout(previous.timer);
    // A create followed by changes is still a create; anything followed by a delete is a delete.
    const merged: ChangeKind = previous?.change.kind === 'created' && kind === 'changed' ? 'created' : kind;
    const change: FileChange = { root: located.root, relPath: located.relPath, kind: merged, isDirectory, version };
    const timer = setTimeout(() => {
      this.pending.delete(key);
      for (const listener of this.listeners) listener(change);
    }, this.options.debounceMs);
    this.pending.set(key, { change, timer });
  }
}

function digest(file: string): string | null {
  try {
    return createHash('sha256').update(readFileSync(file)).digest('hex');
  } catch {
    return null;
  }
}

/**
 * Calls `onChange` (debounced) when the contents of `file` change. Watches the directory rather
 * than the file, so an editor's atomic save or a Kubernetes ConfigMap's symlink swap is seen too,
 * and compares contents, so other files changing beside it (a log, an audit file) do not count.
 */
export function watchFile(file: string, debounceMs: number, onChange: () => void): () => void {
  let timer: NodeJS.Timeout | undefined;
  let last = digest(file);
  const check = () => {
    const now = digest(file);
    if (now === null || now === last) return;
    last = now;
    onChange();
  };
  const watcher = watchDirectory(dirname(file), { persistent: false }, () => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(check, debounceMs);
  });
  watcher.on('error', () => {});
  return () => {
    if (timer) clearTimeout(timer);
    watcher.close();
  };
}
