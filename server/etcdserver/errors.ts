import { status } from '@grpc/grpc-js';

/**
 * Every failure a client can see, one class per kind, carrying etcd's exact message and gRPC
 * code (rpctypes/error.go). Clients match on the message string, so these must never change.
 * Errors from mvcc/ and raft/ are translated into these in one place: grpc-errors.ts.
 */
export class EtcdError extends Error {
  constructor(
    message: string,
    readonly code: status,
  ) {
    super(message);
  }
}

function kind(message: string, code: status): new () => EtcdError {
  return class extends EtcdError {
    constructor() {
      super(message, code);
    }
  };
}

export class ErrEmptyKey extends kind('etcdserver: key is not provided', status.INVALID_ARGUMENT) {}
export class ErrKeyNotFound extends kind('etcdserver: key not found', status.INVALID_ARGUMENT) {}
export class ErrValueProvided extends kind('etcdserver: value is provided', status.INVALID_ARGUMENT) {}
export class ErrLeaseProvided extends kind('etcdserver: lease is provided', status.INVALID_ARGUMENT) {}
export class ErrTooManyOps extends kind('etcdserver: too many operations in txn request', status.INVALID_ARGUMENT) {}
export class ErrDuplicateKey extends kind('etcdserver: duplicate key given in txn request', status.INVALID_ARGUMENT) {}
export class ErrCompacted extends kind('etcdserver: mvcc: required revision has been compacted', status.OUT_OF_RANGE) {}
export class ErrFutureRev extends kind('etcdserver: mvcc: required revision is a future revision', status.OUT_OF_RANGE) {}
export class ErrNoSpace extends kind('etcdserver: mvcc: database space exceeded', status.RESOURCE_EXHAUSTED) {}
export class ErrLeaseNotFound extends kind('etcdserver: requested lease not found', status.NOT_FOUND) {}
export class ErrLeaseExist extends kind('etcdserver: lease already exists', status.FAILED_PRECONDITION) {}
export class ErrLeaseTTLTooLarge extends kind('etcdserver: too large lease TTL', status.OUT_OF_RANGE) {}
export class ErrWatchCanceled extends kind('etcdserver: watch canceled', status.CANCELLED) {}
export class ErrMemberExist extends kind('etcdserver: member ID already exist', status.FAILED_PRECONDITION) {}
export class ErrPeerURLExist extends kind('etcdserver: Peer URLs already exists', status.FAILED_PRECONDITION) {}
export class ErrMemberNotEnoughStarted extends kind('etcdserver: re-configuration failed due to not enough started members', status.FAILED_PRECONDITION) {}
export class ErrMemberBadURLs extends kind('etcdserver: given member URLs are invalid', status.INVALID_ARGUMENT) {}
export class ErrMemberNotFound extends kind('etcdserver: member not found', status.NOT_FOUND) {}
export class ErrMemberNotLearner extends kind('etcdserver: can only promote a learner member', status.FAILED_PRECONDITION) {}
export class ErrLearnerNotReady extends kind('etcdserver: can only promote a learner member which is in sync with leader', status.FAILED_PRECONDITION) {}
export class ErrTooManyLearners extends kind('etcdserver: too many learner members in cluster', status.FAILED_PRECONDITION) {}
export class ErrRequestTooLarge extends kind('etcdserver: request is too large', status.INVALID_ARGUMENT) {}
export class ErrTooManyRequests extends kind('etcdserver: too many requests', status.RESOURCE_EXHAUSTED) {}
export class ErrNoLeader extends kind('etcdserver: no leader', status.UNAVAILABLE) {}
export class ErrNotLeader extends kind('etcdserver: not leader', status.FAILED_PRECONDITION) {}
export class ErrLeaderChanged extends kind('etcdserver: leader changed', status.UNAVAILABLE) {}
export class ErrStopped extends kind('etcdserver: server stopped', status.UNAVAILABLE) {}
export class ErrTimeout extends kind('etcdserver: request timed out', status.UNAVAILABLE) {}
export class ErrTimeoutDueToLeaderFail extends kind('etcdserver: request timed out, possibly due to previous leader failure', status.UNAVAILABLE) {}
export class ErrTimeoutDueToConnectionLost extends kind('etcdserver: request timed out, possibly due to connection lost', status.UNAVAILABLE) {}
export class ErrTimeoutLeaderTransfer extends kind('etcdserver: request timed out, leader transfer took too long', status.UNAVAILABLE) {}
export class ErrUnhealthy extends kind('etcdserver: unhealthy cluster', status.UNAVAILABLE) {}
export class ErrCorrupt extends kind('etcdserver: corrupt cluster', status.DATA_LOSS) {}
export class ErrNotSupportedForLearner extends kind('etcdserver: rpc not supported for learner', status.UNAVAILABLE) {}
export class ErrBadLeaderTransferee extends kind('etcdserver: bad leader transferee', status.FAILED_PRECONDITION) {}
export class ErrAuthNotEnabled extends kind('etcdserver: authentication is not enabled', status.FAILED_PRECONDITION) {}
// The auth store's errors (etcd auth/store.go, mapped by v3rpc/util.go to rpctypes/error.go).
export class ErrRootUserNotExist extends kind('etcdserver: root user does not exist', status.FAILED_PRECONDITION) {}
export class ErrRootRoleNotExist extends kind('etcdserver: root user does not have root role', status.FAILED_PRECONDITION) {}
export class ErrUserAlreadyExist extends kind('etcdserver: user name already exists', status.FAILED_PRECONDITION) {}
export class ErrUserEmpty extends kind('etcdserver: user name is empty', status.INVALID_ARGUMENT) {}
export class ErrUserNotFound extends kind('etcdserver: user name not found', status.FAILED_PRECONDITION) {}
export class ErrRoleAlreadyExist extends kind('etcdserver: role name already exists', status.FAILED_PRECONDITION) {}
export class ErrRoleNotFound extends kind('etcdserver: role name not found', status.FAILED_PRECONDITION) {}
export class ErrRoleEmpty extends kind('etcdserver: role name is empty', status.INVALID_ARGUMENT) {}
export class ErrAuthFailed extends kind('etcdserver: authentication failed, invalid user ID or password', status.INVALID_ARGUMENT) {}
export class ErrPermissionDenied extends kind('etcdserver: permission denied', status.PERMISSION_DENIED) {}
export class ErrRoleNotGranted extends kind('etcdserver: role is not granted to the user', status.FAILED_PRECONDITION) {}
export class ErrPermissionNotGranted extends kind('etcdserver: permission is not granted to the role', status.FAILED_PRECONDITION) {}
export class ErrInvalidAuthToken extends kind('etcdserver: invalid auth token', status.UNAUTHENTICATED) {}
export class ErrInvalidAuthMgmt extends kind('etcdserver: invalid auth management', status.INVALID_ARGUMENT) {}
export class ErrAuthOldRevision extends kind('etcdserver: revision of auth store is old', status.INVALID_ARGUMENT) {}
// Not in etcd's gRPC error map: clients see the auth package's own text with codes.Unknown.
export class ErrNoPasswordUser extends kind('auth: authentication failed, password was given for no password user', status.UNKNOWN) {}
// Errors of the server-side Election and Lock recipes (v3election / clientv3 concurrency); etcd
// returns them with codes.Unknown except for a cancelled context.
export class ErrMissingLeaderKey extends kind('"leader" field must be provided', status.UNKNOWN) {}
export class ErrElectionNotLeader extends kind('election: not leader', status.UNKNOWN) {}
export class ErrElectionNoLeader extends kind('election: no leader', status.UNKNOWN) {}
export class ErrSessionExpired extends kind('session expired', status.UNKNOWN) {}
export class ErrRecipeCanceled extends kind('context canceled', status.CANCELLED) {}
