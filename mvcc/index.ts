/** Public API of mvcc/: the revisioned keyspace (etcd's mvcc package, minus watch and lease). */
export { KvStore, KEY_BUCKET, META_BUCKET } from './kv-store';
export type { KvStoreOptions, HashKVResult, CompactResult } from './kv-store';
export { TxnWrite } from './kv-store-txn';
export { Backend, Bucket } from './backend';
export type { BackendOptions, Entry, IterateOptions } from './backend';
export { EMPTY_BUFFER } from './kv';
export type { KeyValue, Event, EventType, RangeOptions, RevRangeOptions, RangeResult } from './kv';
export { MvccError, ErrCompacted, ErrFutureRev, ErrClosed, ErrBackend } from './errors';
export * from './limits';
export { crc32c, crc32cUpdate } from './crc32c';
