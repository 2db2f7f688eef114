/**
 * JSON <-> protobuf exactly as etcd's gateway converts them: grpc-gateway v1's JSONPb marshaler with
 * etcd's options (`&gw.JSONPb{OrigName: true}`, EmitDefaults false) over golang/protobuf 1.3's jsonpb.
 *
 * Out: proto field names, zero values and empty lists omitted, 64-bit integers as strings, 32-bit
 * ones as numbers, bytes as standard base64, enums by name, strings escaped as Go's encoding/json
 * escapes them (<, >, & as \u003c...). In: proto names or lowerCamel JSON names (the camel one wins
 * when both are given), integers as numbers or strings, enums as names or numbers, unknown fields
 * ignored, null as the default; type errors worded as Go words them.
 */
import * as protobuf from 'protobufjs';
import { type JsonNode, JsonSyntaxError, parseWhole } from './json-scanner';
import { CorruptInputError, decodeBase64Go } from './go-base64';

/** A request that does not fit its message type; etcd answers it as InvalidArgument. */
export class JsonDecodeError extends Error {}

const INT_TYPES: Record<string, { go: string; signed: boolean; bits: 32 | 64 }> = {
  int64: { go: 'int64', signed: true, bits: 64 },
  sint64: { go: 'int64', signed: true, bits: 64 },
  sfixed64: { go: 'int64', signed: true, bits: 64 },
  uint64: { go: 'uint64', signed: false, bits: 64 },
  fixed64: { go: 'uint64', signed: false, bits: 64 },
  int32: { go: 'int32', signed: true, bits: 32 },
  sint32: { go: 'int32', signed: true, bits: 32 },
  sfixed32: { go: 'int32', signed: true, bits: 32 },
  uint32: { go: 'uint32', signed: false, bits: 32 },
  fixed32: { go: 'uint32', signed: false, bits: 32 },
};

const KIND_WORD: Record<JsonNode['t'], string> = { obj: 'object', arr: 'array', str: 'string', num: 'number', bool: 'bool', null: 'null' };

function typeError(node: JsonNode, goType: string, withValue = false): JsonDecodeError {
  const what = withValue ? `number ${node.raw}` : KIND_WORD[node.t];
  return new JsonDecodeError(`json: cannot unmarshal ${what} into Go value of type ${goType}`);
}

/** protoc's JSON name: underscores dropped, the next letter upper-cased. */
function jsonName(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase()).replace(/_/g, '');
}

/** The Go name of an enum type as golang/protobuf registers it: `pkg.Outer_Enum`. */
function goEnumName(e: protobuf.Enum): string {
  const parts = e.fullName.replace(/^\./, '').split('.');
  let pkgLen = 0;
  for (let ns: protobuf.ReflectionObject | null = e.parent; ns && !(ns instanceof protobuf.Root); ns = ns.parent) {
    if (!(ns instanceof protobuf.Type)) pkgLen++;
  }
  return `${parts.slice(0, pkgLen).join('.')}.${parts.slice(pkgLen).join('_')}`;
}

// ---------------------------------------------------------------- JSON -> message object

/** A request body value as the plain object protobufjs's fromObject takes (longs as strings). */
export function fromJson(type: protobuf.Type, node: JsonNode): Record<string, unknown> {
  if (node.t === 'null') return {};
  if (node.t !== 'obj') throw typeError(node, 'map[string]json.RawMessage');
  const out: Record<string, unknown> = {};
  for (const field of type.fieldsArray) {
    const camel = field.options?.json_name ? String(field.options.json_name) : jsonName(field.name);
    const raw = node.entries.get(camel) ?? node.entries.get(field.name);
    if (raw === undefined || raw.t === 'null') continue;
    field.resolve();
    out[field.name] = field.repeated ? repeatedFromJson(field, raw) : valueFromJson(field, raw);
  }
  return out;
}

function repeatedFromJson(field: protobuf.Field, node: JsonNode): unknown[] {
  if (node.t !== 'arr') throw typeError(node, '[]json.RawMessage');
  return node.items.map((item) => (item.t === 'null' ? defaultOf(field) : valueFromJson(field, item)));
}

function defaultOf(field: protobuf.Field): unknown {
  if (field.resolvedType instanceof protobuf.Type) return {};
  if (field.type === 'bytes') return Buffer.alloc(0);
  if (field.type === 'string') return '';
  if (field.type === 'bool') return false;
  return 0;
}

function valueFromJson(field: protobuf.Field, node: JsonNode): unknown {
  const rt = field.resolvedType;
  if (rt instanceof protobuf.Type) return fromJson(rt, node);
  if (rt instanceof protobuf.Enum) return enumFromJson(rt, node);
  const intType = INT_TYPES[field.type];
  if (intType) return intFromJson(node, intType.go, intType.signed, intType.bits);
  switch (field.type) {
    case 'bool':
      if (node.t !== 'bool') throw typeError(node, 'bool');
      return node.v;
    case 'string':
      if (node.t !== 'str') throw typeError(node, 'string');
      return node.v;
    case 'bytes':
      if (node.t !== 'str') throw typeError(node, '[]uint8');
      try {
        return decodeBase64Go(Buffer.from(node.v, 'utf8'));
      } catch (e) {
        throw e instanceof CorruptInputError ? new JsonDecodeError(e.message) : e;
      }
    case 'double':
    case 'float':
      if (node.t === 'num') return Number(node.raw);
      if (node.t === 'str') return Number(parseWhole(node.raw.slice(1, -1)).raw);
      throw typeError(node, field.type === 'double' ? 'float64' : 'float32');
    default:
      throw new JsonDecodeError(`unsupported field type ${field.type}`);
  }
}

function enumFromJson(e: protobuf.Enum, node: JsonNode): number {
  if (node.t === 'str') {
    // jsonpb takes the bytes between the quotes as the name, unescaped.
    const name = node.raw.slice(1, -1);
    const n = e.values[name];
    if (n === undefined) throw new JsonDecodeError(`unknown value ${JSON.stringify(name)} for enum ${goEnumName(e)}`);
    return n;
  }
  return Number(intFromJson(node, goEnumName(e), true, 32));
}

const LIMITS = {
  int64: [-(2n ** 63n), 2n ** 63n - 1n],
  uint64: [0n, 2n ** 64n - 1n],
  int32: [-(2n ** 31n), 2n ** 31n - 1n],
  uint32: [0n, 2n ** 32n - 1n],
} as const;

/** Go: strip the quotes of a quoted number, then json.Unmarshal the rest into the integer. */
function intFromJson(node: JsonNode, goType: string, signed: boolean, bits: 32 | 64): string {
  let n = node;
  if (n.t === 'str') {
    try {
      n = parseWhole(n.raw.slice(1, -1));
    } catch (e) {
      if (e instanceof JsonSyntaxError) throw new JsonDecodeError(e.message);
      throw e;
    }
    if (n.t === 'null') return '0';
  }
  if (n.t !== 'num') throw typeError(n, goType);
  const [lo, hi] = LIMITS[`${signed ? '' : 'u'}int${bits}`];
  if (!/^-?\d+$/.test(n.raw)) throw typeError(n, goType, true);
  const v = BigInt(n.raw);
  if (v < lo || v > hi) throw typeError(n, goType, true);
  return v.toString();
}

// ---------------------------------------------------------------- message -> JSON

/** Go's encoding/json string escaping (HTML-safe, as json.Marshal writes it). */
export function goJsonString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20 || ch === '<' || ch === '>' || ch === '&' || c === 0x2028 || c === 0x2029) out += `\\u${c.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return `${out}"`;
}

type Long = { isZero(): boolean; toString(): string };
const isLong = (v: unknown): v is Long => typeof v === 'object' && v !== null && typeof (v as Long).isZero === 'function';

/** A decoded message as jsonpb writes it with OrigName and without defaults. */
export function toJson(type: protobuf.Type, msg: protobuf.Message | Record<string, unknown>): string {
  const m = msg as Record<string, unknown>;
  const parts: string[] = [];
  for (const field of type.fieldsArray) {
    field.resolve();
    const v = m[field.name];
    const inSetOneof = field.partOf !== null && m[field.partOf.name] === field.name;
    if (field.repeated) {
      const arr = v as unknown[] | undefined;
      if (!arr || arr.length === 0) continue;
      parts.push(`"${field.name}":[${arr.map((x) => scalarOrMessage(field, x)).join(',')}]`);
      continue;
    }
    if (v === undefined || v === null) continue;
    // proto3: a zero scalar is not written, unless it is the set member of a oneof (jsonpb).
    if (!inSetOneof && !(field.resolvedType instanceof protobuf.Type) && isZero(v)) continue;
    parts.push(`"${field.name}":${scalarOrMessage(field, v)}`);
  }
  return `{${parts.join(',')}}`;
}

function isZero(v: unknown): boolean {
  if (isLong(v)) return v.isZero();
  if (typeof v === 'number') return v === 0;
  if (typeof v === 'string') return v.length === 0;
  if (typeof v === 'boolean') return !v;
  // protobufjs's default for an absent bytes field is an empty plain array, not a Buffer.
  if (v instanceof Uint8Array || Array.isArray(v)) return v.length === 0;
  return false;
}

function scalarOrMessage(field: protobuf.Field, v: unknown): string {
  const rt = field.resolvedType;
  if (rt instanceof protobuf.Type) return toJson(rt, v as protobuf.Message);
  if (rt instanceof protobuf.Enum) {
    const name = rt.valuesById[v as number];
    return name === undefined ? `"${String(v)}"` : `"${name}"`;
  }
  const intType = INT_TYPES[field.type];
  if (intType?.bits === 64) return `"${isLong(v) ? v.toString() : String(v)}"`;
  if (intType) return String(v);
  if (field.type === 'bytes') return `"${Buffer.from(v as Uint8Array).toString('base64')}"`;
  if (field.type === 'string') return goJsonString(v as string);
  return String(v);
}
