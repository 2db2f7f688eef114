/**
 * Typed mvcc failures. Each has a stable `code`; the server maps them to etcd's gRPC errors in one
 * place (e.g. ErrCompacted → OutOfRange "etcdserver: mvcc: required revision has been compacted").
 */

export abstract class MvccError extends Error {
  abstract readonly code: string;
}

/** A read, watch or compaction asked for a revision that compaction has already removed. */
export class ErrCompacted extends MvccError {
  readonly code = 'COMPACTED';
  constructor() {
    super('mvcc: required revision has been compacted');
    this.name = 'ErrCompacted';
  }
}

/** A read or compaction asked for a revision newer than the store's current revision. */
export class ErrFutureRev extends MvccError {
  readonly code = 'FUTURE_REV';
  constructor() {
    super('mvcc: required revision is a future revision');
    this.name = 'ErrFutureRev';
  }
}

/** The store (or backend) was used after close(), or closed while an operation was running. */
export class ErrClosed extends MvccError {
  readonly code = 'CLOSED';
  constructor() {
    super('mvcc: store is closed');
    this.name = 'ErrClosed';
  }
}

/**
 * A LevelDB batch write failed. The store refuses further writes: the raft log is the source of
 * truth, so the server should stop and restart, replaying from `consistentIndex`.
 */
export class ErrBackend extends MvccError {
  readonly code = 'BACKEND';
  constructor(override readonly cause: unknown) {
    super(`mvcc: backend write failed: ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = 'ErrBackend';
  }
}
