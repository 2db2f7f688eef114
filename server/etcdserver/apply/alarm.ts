import type { Logger } from 'pino';
import { AlarmAction, AlarmType, type AlarmRequest } from '../../../proto/etcd-types';
import type { Alarm, AlarmStore } from '../alarms';

/**
 * Applies an Alarm request (etcd's applierV3backend.Alarm): GET lists, ACTIVATE raises once,
 * DEACTIVATE clears; only ACTIVATE and DEACTIVATE come through the log.
 */
export function applyAlarm(alarms: AlarmStore, r: AlarmRequest, log: Logger): Alarm[] {
  const memberId = BigInt(r.memberID);
  switch (r.action) {
    case AlarmAction.GET:
      return alarms.get(r.alarm);
    case AlarmAction.ACTIVATE: {
      if (r.alarm === AlarmType.NONE) return [];
      const a = alarms.activate(memberId, r.alarm);
      if (!a) return [];
      log.warn({ alarm: AlarmType[a.type], member: a.memberId.toString(16) }, 'alarm raised');
      return [a];
    }
    case AlarmAction.DEACTIVATE: {
      const a = alarms.deactivate(memberId, r.alarm);
      if (!a) return [];
      log.info({ alarm: AlarmType[a.type], member: a.memberId.toString(16) }, 'alarm cleared');
      return [a];
    }
    default:
      return [];
  }
}
