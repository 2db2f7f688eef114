import { AlarmType, type AlarmMember } from '../../proto/etcd-types';

/**
 * Raised alarms (etcd's v3alarm.AlarmStore): per member and type, changed only through the log so
 * every member agrees, and persisted in the backend's "alarm" bucket.
 */
export interface AlarmPersistence {
  put(key: Buffer): void;
  del(key: Buffer): void;
}

export interface Alarm {
  memberId: bigint;
  type: AlarmType;
}

function key(a: Alarm): Buffer {
  const b = Buffer.alloc(9);
  b.writeBigUInt64BE(a.memberId, 0);
  b[8] = a.type;
  return b;
}

export function decodeAlarmKey(b: Buffer): Alarm {
  return { memberId: b.readBigUInt64BE(0), type: b[8] as AlarmType };
}

export class AlarmStore {
  private readonly alarms = new Map<string, Alarm>();

  constructor(private readonly persistence: AlarmPersistence) {}

  restore(alarms: Iterable<Alarm>): void {
    this.alarms.clear();
    for (const a of alarms) this.alarms.set(`${a.memberId}:${a.type}`, a);
  }

  /** Returns the alarm if it was newly raised. */
  activate(memberId: bigint, type: AlarmType): Alarm | undefined {
    const id = `${memberId}:${type}`;
    if (this.alarms.has(id)) return undefined;
    const a = { memberId, type };
    this.alarms.set(id, a);
    this.persistence.put(key(a));
    return a;
  }

  /** Returns the alarm if it was raised and is now cleared. */
  deactivate(memberId: bigint, type: AlarmType): Alarm | undefined {
    const id = `${memberId}:${type}`;
    const a = this.alarms.get(id);
    if (!a) return undefined;
    this.alarms.delete(id);
    this.persistence.del(key(a));
    return a;
  }

  /** All alarms of a type, or every alarm for NONE. */
  get(type: AlarmType): Alarm[] {
    return [...this.alarms.values()].filter((a) => type === AlarmType.NONE || a.type === type);
  }

  has(type: AlarmType): boolean {
    for (const a of this.alarms.values()) if (a.type === type) return true;
    return false;
  }

  static toMsg(a: Alarm): AlarmMember {
    return { memberID: a.memberId.toString(), alarm: a.type };
  }
}
