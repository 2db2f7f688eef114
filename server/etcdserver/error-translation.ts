import { status } from '@grpc/grpc-js';
import { ErrCompacted as MvccCompacted, ErrFutureRev as MvccFutureRev } from '../../mvcc/errors';
import { ErrLeaseExists, ErrLeaseNotFound as LessorLeaseNotFound, ErrLeaseTTLTooLarge as LessorTTLTooLarge, ErrNotPrimary } from '../../mvcc/lessor';
import {
  ErrCompacted,
  ErrFutureRev,
  ErrLeaseExist,
  ErrLeaseNotFound,
  ErrLeaseTTLTooLarge,
  ErrNotLeader,
  EtcdError,
} from './errors';

/**
 * The one place where failures from mvcc/, leases and raft become etcd's errors (v3rpc/util.go
 * toGRPCErrorMap). Anything unknown is reported as codes.Unknown with its message, as etcd does.
 */
export function toEtcdError(e: unknown): EtcdError {
  if (e instanceof EtcdError) return e;
  if (e instanceof MvccCompacted) return new ErrCompacted();
  if (e instanceof MvccFutureRev) return new ErrFutureRev();
  if (e instanceof LessorLeaseNotFound) return new ErrLeaseNotFound();
  if (e instanceof ErrLeaseExists) return new ErrLeaseExist();
  if (e instanceof LessorTTLTooLarge) return new ErrLeaseTTLTooLarge();
  if (e instanceof ErrNotPrimary) return new ErrNotLeader();
  return new EtcdError(e instanceof Error ? e.message : String(e), status.UNKNOWN);
}

