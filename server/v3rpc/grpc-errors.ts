import { Metadata, type ServiceError } from '@grpc/grpc-js';
import { toEtcdError } from '../etcdserver/error-translation';

/** Any failure as the gRPC status etcd answers with: its code and exact message (v3rpc/util.go togRPCError). */
export function toServiceError(e: unknown): Partial<ServiceError> {
  const err = toEtcdError(e);
  return { code: err.code, details: err.message, metadata: new Metadata() };
}
