/**
 * Typed errors with stable codes (etcd-io/raft's Err* values), so the server maps them to etcd's
 * error strings in one place. Assertion failures are a separate class: they mean a bug in raft/ or
 * a broken caller contract, never an expected condition.
 */

export class RaftError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** The requested index is older than the storage's first index (it was compacted away). */
export class ErrCompacted extends RaftError {
  constructor() {
    super('ErrCompacted', 'requested index is unavailable due to compaction');
  }
}

/** The snapshot is older than the one already in storage. */
export class ErrSnapOutOfDate extends RaftError {
  constructor() {
    super('ErrSnapOutOfDate', 'requested index is older than the existing snapshot');
  }
}

/** The requested index is beyond the storage's last index. */
export class ErrUnavailable extends RaftError {
  constructor() {
    super('ErrUnavailable', 'requested entry at index is unavailable');
  }
}

/** The storage is building a snapshot; Raft retries later. */
export class ErrSnapshotTemporarilyUnavailable extends RaftError {
  constructor() {
    super('ErrSnapshotTemporarilyUnavailable', 'snapshot is temporarily unavailable');
  }
}

/** A proposal was refused: no leader, forwarding disabled, uncommitted cap hit, or a transfer in progress. */
export class ErrProposalDropped extends RaftError {
  constructor(reason = 'raft proposal dropped') {
    // An expected outcome, raised on every proposal without a leader (etcd-io/raft returns a
    // sentinel value): skip the stack capture, which dominated its cost.
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      super('ErrProposalDropped', reason);
    } finally {
      Error.stackTraceLimit = limit;
    }
  }
}

/** A local-only message type (MsgHup, MsgBeat...) was passed to RawNode.step. */
export class ErrStepLocalMsg extends RaftError {
  constructor() {
    super('ErrStepLocalMsg', 'raft: cannot step raft local message');
  }
}

export class ErrConfigInvalid extends RaftError {
  constructor(reason: string) {
    super('ErrConfigInvalid', reason);
  }
}

/** A membership change that would break an invariant of the configuration (confchange.Changer). */
export class ErrConfChangeInvalid extends RaftError {
  constructor(reason: string) {
    super('ErrConfChangeInvalid', reason);
  }
}

export class AssertionError extends Error {
  constructor(message: string) {
    super(`raft assertion failed: ${message}`);
    this.name = 'AssertionError';
  }
}

/** TigerStyle assertion: cheap when it holds; the message is a literal so the hot path does not build strings. */
export function assert(cond: unknown, message: string): asserts cond {
  if (!cond) throw new AssertionError(message);
}
