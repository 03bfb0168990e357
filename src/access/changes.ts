import type { FileChange, RootWatcher } from '../fs/watch.js';
import type { PolicyEngine } from '../policy/engine.js';
import { uriFor } from '../policy/paths.js';

/** A change as the feed emits it, in the shape of an MCP change event, with the root it happened in (for grants). */
export type FeedEvent =
  | { readonly kind: 'resource_updated'; readonly uri: string; readonly root: string }
  | { readonly kind: 'resources_list_changed'; readonly root: string };

type Listener = (event: FeedEvent) => void;

/**
 * Turns file-system changes into MCP change events, for visible files only: an excluded or
 * unreadable file never produces an event, so listening cannot reveal that it exists. The watcher
 * runs only while someone listens.
 */
export class ChangeFeed {
  private readonly listeners = new Set<Listener>();
  private stopWatching: (() => void) | undefined;
  private readonly listChangedTimers = new Map<string, NodeJS.Timeout>();

  constructor(
    private watcher: RootWatcher | null,
    private readonly policy: () => PolicyEngine,
    private readonly debounceMs: number,
  ) {}

  /** Switches to another watcher (the roots changed on reload); listeners carry over. */
  async useWatcher(watcher: RootWatcher | null): Promise<void> {
    const previous = this.watcher;
    const wasWatching = this.stopWatching !== undefined;
    this.stopWatching?.();
    this.stopWatching = undefined;
    this.watcher = watcher;
    if (wasWatching && watcher) this.stopWatching = watcher.subscribe((change) => this.onChange(change));
    await previous?.close();
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    if (this.watcher && !this.stopWatching)
      this.stopWatching = this.watcher.subscribe((change) => this.onChange(change));
    let active = true;
    return () => {
      if (!active) return;
      active = false;
      this.listeners.delete(listener);
      if (this.listeners.size === 0) this.stop();
    };
  }

  /** Whether the file watcher is running (it runs only while someone listens). */
  get watching(): boolean {
    return this.stopWatching !== undefined;
  }

  /** Resolves when the watcher is ready to report (tests wait for it before changing files). */
  async whenWatching(): Promise<void> {
    await this.watcher?.whenReady();
  }

  close(): void {
    this.listeners.clear();
    this.stop();
  }

  private stop(): void {
    this.stopWatching?.();
    this.stopWatching = undefined;
    for (const timer of this.listChangedTimers.values()) clearTimeout(timer);
    this.listChangedTimers.clear();
  }

  private onChange(change: FileChange): void {
    const policy = this.policy();
    const root = policy.rootByName(change.root.name);
    if (!root) return;
    if (change.isDirectory) {
      if (!policy.isExcluded(change.relPath)) this.listChanged(root.name);
      return;
    }
    if (!policy.isVisible(root, change.relPath, 'file')) return;
    if (change.kind !== 'changed') this.listChanged(root.name);
    if (change.kind !== 'created') {
      this.emit({ kind: 'resource_updated', uri: uriFor(root, change.relPath), root: root.name });
    }
  }

  /** Many files appearing at once in a root are one list change for that root. */
  private listChanged(root: string): void {
    if (this.listChangedTimers.has(root)) return;
    this.listChangedTimers.set(
      root,
      setTimeout(() => {
        this.listChangedTimers.delete(root);
        this.emit({ kind: 'resources_list_changed', root });
      }, this.debounceMs),
    );
  }

  private emit(event: FeedEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // One broken listener (a closed stream) must not starve the others.
      }
    }
  }
}
