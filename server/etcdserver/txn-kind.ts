import type { TxnRequest } from '../../proto/etcd-types';

/**
 * etcd's isTxnReadonly and isTxnSerializable (v3_server.go): a txn with no writes never enters the
 * log; it is served from local state, after ReadIndex unless every range in it is serializable.
 */
export function isTxnReadOnly(r: TxnRequest): boolean {
  for (const op of [...r.success, ...r.failure]) {
    if (op.request_put || op.request_delete_range) return false;
    if (op.request_txn && !isTxnReadOnly(op.request_txn)) return false;
  }
  return true;
}

export function isTxnSerializable(r: TxnRequest): boolean {
  for (const op of [...r.success, ...r.failure]) {
    if (op.request_range && !op.request_range.serializable) return false;
    if (op.request_txn && !isTxnSerializable(op.request_txn)) return false;
  }
  return true;
}
