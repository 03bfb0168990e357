/** What /ready asks. */
export interface Readiness {
  /** Why the server is not ready, or null when it is. */
  notReadyReason(): Promise<string | null>;
}

type State = 'starting' | 'ready' | 'draining' | 'stopped';

/** Where the process is in its life; part of what /ready reports. */
export class Lifecycle {
  private state: State = 'starting';

  markReady(): void {
    if (this.state === 'starting') this.state = 'ready';
  }

  /** From here on, readiness fails so load balancers stop sending work. */
  markDraining(): void {
    if (this.state !== 'stopped') this.state = 'draining';
  }

  markStopped(): void {
    this.state = 'stopped';
  }

  get current(): State {
    return this.state;
  }

  notReadyReason(): string | null {
    switch (this.state) {
      case 'ready':
        return null;
      case 'starting':
        return 'starting';
      case 'draining':
        return 'shutting down';
      case 'stopped':
        return 'stopped';
    }
  }
}
