import type { BusChange, ChangeBus } from '../cluster/changeBus.js';
import type { FileChange, RootWatcher } from '../fs/watch.js';
import type { PolicyEngine } from '../policy/engine.js';
import { uriFor } from '../policy/paths.js';

/** A change as the feed emits it, in the shape of an MCP change event, with the root it happened in (for grants). */
export type FeedEvent =
  | { readonly kind: 'resource_updated'; readonly uri: string; readonly root: string }
  | { readonly kind: 'resources_list_changed'; readonly root: string };

type Listener = (event: FeedEvent) => void;

/**
 * A report of an entry at the version last told for it, within this window, repeats that change:
 * a write through mcpd is published by the replica that made it and seen again by file watchers
 * (each replica's, on a shared volume) a debounce or a loaded machine's while later. The version
 * (size and mtime to the millisecond, `dir`, `gone`) tells a repeat from a new change; the window
 * only bounds how long an entry is remembered.
 */
const SAME_CHANGE_MS = 10_000;
/** Changes remembered for that, at most: past it the oldest are forgotten (and could be told twice). */
const MAX_REMEMBERED = 10_000;

/**
 * Turns changes into MCP change events, for visible files only: an excluded or unreadable file
 * never produces an event, so listening cannot reveal that it exists. Changes come from writes
 * through mcpd and from the file watcher, and travel through the change bus (in this process, or
 * to every replica), so a listener hears of a write made through any replica. The watcher runs
 * only while someone listens.
 */
export class ChangeFeed {
  private readonly listeners = new Set<Listener>();
  private stopWatching: (() => void) | undefined;
  private stopHearing: (() => void) | undefined;
  private readonly listChangedTimers = new Map<string, NodeJS.Timeout>();
  /** The last change told per entry (root and path), oldest first. */
  private readonly recent = new Map<string, { version: string; at: number }>();

  constructor(
    private watcher: RootWatcher | null,
    private readonly policy: () => PolicyEngine,
    private readonly debounceMs: number,
    private readonly bus: ChangeBus,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** A change made through mcpd (a write, a move, a delete): told to listeners on every replica. */
  changed(change: BusChange): void {
    this.bus.publish(change);
  }

  /** Switches to another watcher (the roots changed on reload); listeners carry over. */
  async useWatcher(watcher: RootWatcher | null): Promise<void> {
    const previous = this.watcher;
    const wasWatching = this.stopWatching !== undefined;
    this.stopWatching?.();
    this.stopWatching = undefined;
    this.watcher = watcher;
    if (wasWatching && watcher) this.stopWatching = watcher.subscribe((change) => this.onWatched(change));
    await previous?.close();
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    this.stopHearing ??= this.bus.subscribe((change) => this.onChange(change));
    if (this.watcher && !this.stopWatching)
      this.stopWatching = this.watcher.subscribe((change) => this.onWatched(change));
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
    this.stopHearing?.();
    this.stopHearing = undefined;
    for (const timer of this.listChangedTimers.values()) clearTimeout(timer);
    this.listChangedTimers.clear();
  }

  private onWatched(change: FileChange): void {
    this.bus.publish({
      root: change.root.name,
      relPath: change.relPath,
      kind: change.kind,
      isDirectory: change.isDirectory,
      version: change.version,
    });
  }

  /**
   * Whether this report repeats the last change told for its entry within SAME_CHANGE_MS: the same
   * entry at the same version (a watcher may see the rename that replaced a file as its creation;
   * the first report is the one told). A report of unknown version is always told.
   */
  private heardAlready(change: BusChange): boolean {
    const entry = `${change.root}\0${change.relPath}`;
    const now = this.now();
    const last = this.recent.get(entry);
    this.recent.delete(entry);
    this.recent.set(entry, { version: change.version, at: now });
    if (this.recent.size > MAX_REMEMBERED) {
      for (const [old, { at }] of this.recent) {
        if (this.recent.size <= MAX_REMEMBERED && now - at < SAME_CHANGE_MS) break;
        this.recent.delete(old);
      }
    }
    return change.version !== '' && last?.version === change.version && now - last.at < SAME_CHANGE_MS;
  }

  private onChange(change: BusChange): void {
    if (this.heardAlready(change)) return;
    // Judged here, by this replica's policy: the bus carries names, never a verdict.
    const policy = this.policy();
    const root = policy.rootByName(change.root);
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
