import * as path from 'node:path';
import * as protoLoader from '@grpc/proto-loader';
import * as grpc from '@grpc/grpc-js';
import * as protobuf from 'protobufjs';

/**
 * Where the .proto files live. They are read at run time (not compiled in) so the schema
 * that ships is exactly the one clients use; dist/proto/ resolves back to the source tree.
 */
export const PROTO_DIR = path.resolve(__dirname, __dirname.includes(`${path.sep}dist${path.sep}`) ? '../../proto' : '.');
const INCLUDE_DIRS = [path.join(PROTO_DIR, 'etcd'), path.join(PROTO_DIR, 'cairn'), path.join(PROTO_DIR, 'grpc')];

export const ETCD_PROTO_FILES = ['rpc.proto', 'kv.proto', 'auth.proto', 'v3election.proto', 'v3lock.proto', 'health.proto'];

/**
 * One decoding convention for every message, on the wire and in the log:
 * snake_case field names as in the .proto, 64-bit integers as decimal strings (lease and member
 * IDs use all 64 bits, so they cannot be JS numbers), enums as numbers, bytes as Buffers,
 * and defaults filled in so handlers never test for undefined.
 */
export const DECODE_OPTIONS: protoLoader.Options & protobuf.IConversionOptions = {
  keepCase: true,
  longs: String,
  enums: Number,
  bytes: Buffer,
  defaults: true,
  arrays: true,
  oneofs: true,
  includeDirs: INCLUDE_DIRS,
};

let etcdPackage: grpc.GrpcObject | undefined;

/** The etcd gRPC services (etcdserverpb, v3electionpb, v3lockpb), loaded once. */
export function loadEtcdServices(): grpc.GrpcObject {
  if (!etcdPackage) {
    const def = protoLoader.loadSync(ETCD_PROTO_FILES, DECODE_OPTIONS);
    etcdPackage = grpc.loadPackageDefinition(def);
  }
  return etcdPackage;
}

/** The service definition for `package.Service`, for registering handlers on a grpc.Server. */
export function serviceDefinition(pkg: string, service: string): grpc.ServiceDefinition {
  let ns: grpc.GrpcObject | undefined = loadEtcdServices();
  for (const part of pkg.split('.')) ns = ns?.[part] as grpc.GrpcObject | undefined;
  const ctor = ns?.[service] as grpc.ServiceClientConstructor | undefined;
  if (!ctor) throw new Error(`unknown service ${pkg}.${service}`);
  return ctor.service;
}

let root: protobuf.Root | undefined;

/** A protobufjs Root over every schema, for internal encoding (log entries, peer messages). */
export function protoRoot(): protobuf.Root {
  if (!root) {
    const r = new protobuf.Root();
    r.resolvePath = (_origin, target) => {
      for (const dir of INCLUDE_DIRS) {
        const candidate = path.join(dir, path.basename(target));
        if (require('node:fs').existsSync(candidate)) return candidate;
      }
      return target;
    };
    r.loadSync([...ETCD_PROTO_FILES, 'internal.proto', 'raft.proto'], { keepCase: true });
    r.resolveAll();
    root = r;
  }
  return root;
}

/** A codec for one message type, converting to and from the DECODE_OPTIONS object shape. */
export interface MessageCodec<T> {
  encode(value: T): Uint8Array;
  decode(bytes: Uint8Array): T;
}

export function messageCodec<T>(fullName: string): MessageCodec<T> {
  const type = protoRoot().lookupType(fullName);
  return {
    encode(value: T): Uint8Array {
      return type.encode(type.fromObject(value as unknown as Record<string, unknown>)).finish();
    },
    decode(bytes: Uint8Array): T {
      return type.toObject(type.decode(bytes), DECODE_OPTIONS) as T;
    },
  };
}
