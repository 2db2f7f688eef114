/**
 * Leadership changes as this member's Raft node observes them (a SoftState with a new lead), for
 * observers outside the server: the embedding API's 'leaderChanged' event (embed/lifecycle.ts).
 * etcd's embed exposes the same through Server.Leader() and LeaderChangedNotify().
 */
export type LeaderChangeListener = (leader: bigint, term: number) => void;

export class LeadershipEvents {
  private readonly listeners = new Set<LeaderChangeListener>();

  /** Returns the function that unsubscribes. */
  on(listener: LeaderChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(leader: bigint, term: number): void {
    // An observer's exception must not break the Ready loop that reports the change; it is thrown
    // again on its own turn of the event loop, where it is an uncaught exception like any other
    // (bin/cairn fail-stops on it; an embedding program handles it as it handles its own).
    for (const l of this.listeners) {
      try {
        l(leader, term);
      } catch (e) {
        setImmediate(() => {
          throw e;
        });
      }
    }
  }
}
