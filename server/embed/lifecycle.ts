import { EventEmitter } from 'node:events';

/**
 * Lifecycle events of an embedded member (etcd's embed.Etcd: Server.ReadyNotify(),
 * LeaderChangedNotify(), Err() and StopNotify()), as a typed EventEmitter on RunningMember:
 *
 *   member.on('leaderChanged', ({ leader, term }) => ...);   // hex member ID, '0' while there is none
 *   await member.ready;                                       // listening, with a leader
 *   member.on('stopped', ({ error }) => ...);                 // close(), or removed from the cluster
 *
 * Events that happen while startMember is still running (a single member usually elects itself
 * then) are held and delivered on the first turn of the event loop after it resolves, in order, so
 * listeners attached right after `await startMember(...)` see every event.
 */

export interface LeaderChange {
  /** The leader's member ID in hex, as etcdctl prints it; '0' when the member knows no leader. */
  leader: string;
  term: number;
  /** This member is the leader. */
  isLeader: boolean;
}

export interface Stopped {
  /** Why the member stopped on its own (removed from the cluster), or close() failed; absent on a clean close(). */
  error?: Error;
}

export interface MemberEventMap {
  ready: [];
  leaderChanged: [LeaderChange];
  stopped: [Stopped];
}

type Held = { [K in keyof MemberEventMap]: [K, ...MemberEventMap[K]] }[keyof MemberEventMap];

export class MemberLifecycle extends EventEmitter<MemberEventMap> {
  /**
   * Resolves once the member is listening and knows a leader; rejects if it stops first. It
   * settles when the 'ready' (or 'stopped') event is delivered, so it never runs ahead of the
   * 'leaderChanged' event that made the member ready.
   */
  readonly ready: Promise<void>;
  private held: Held[] | undefined = [];
  private isReady = false;
  private hasStopped = false;
  private listening = false;
  private current: LeaderChange = { leader: '0', term: 0, isLeader: false };
  private resolveReady!: () => void;
  private rejectReady!: (e: Error) => void;

  constructor(private readonly memberId: bigint) {
    super();
    this.ready = new Promise<void>((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    // Nobody awaiting `ready` when the member stops early is not an unhandled rejection.
    this.ready.catch(() => undefined);
  }

  /** The leader as last observed. */
  get leader(): LeaderChange {
    return { ...this.current };
  }

  /** Fed from the server's LeadershipEvents. */
  leaderChanged(leader: bigint, term: number): void {
    this.current = { leader: leader.toString(16), term, isLeader: leader === this.memberId && leader !== 0n };
    this.deliver(['leaderChanged', { ...this.current }]);
    this.maybeReady();
  }

  /** startMember has bound every listener and is about to resolve. */
  started(): void {
    this.listening = true;
    this.maybeReady();
    setImmediate(() => {
      const held = this.held ?? [];
      this.held = undefined;
      for (const h of held) this.fire(h);
    });
  }

  stopped(error?: Error): void {
    if (this.hasStopped) return;
    this.hasStopped = true;
    this.deliver(['stopped', error ? { error } : {}]);
  }

  private maybeReady(): void {
    if (this.isReady || this.hasStopped || !this.listening || this.current.leader === '0') return;
    this.isReady = true;
    this.deliver(['ready']);
  }

  private deliver(h: Held): void {
    if (this.held) this.held.push(h);
    else this.fire(h);
  }

  private fire(h: Held): void {
    switch (h[0]) {
      case 'ready':
        this.resolveReady();
        this.emit('ready');
        break;
      case 'leaderChanged':
        this.emit('leaderChanged', h[1]);
        break;
      case 'stopped':
        // A no-op if 'ready' came first (a settled promise stays settled).
        this.rejectReady(h[1].error ?? new Error('the member stopped before it was ready'));
        this.emit('stopped', h[1]);
        break;
    }
  }
}
