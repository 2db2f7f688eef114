/**
 * cairn as a library (etcd's embed package): `import { startMember, memberConfig } from 'cairn'`.
 * A member embedded in a Node program is the same member bin/cairn runs, with the same flags.
 *
 *   const member = await startMember(memberConfig({ name: 'app', dataDir: '/var/lib/app/etcd' }));
 *   member.on('leaderChanged', ({ leader, term }) => console.log(leader, term));
 *   await member.ready;
 *   await member.close();
 */
export { startMember, type RunningMember } from './etcd';
export { buildConfig, parseFlags, FlagError, type ServerConfig, type ParsedFlags } from './config';
export { memberConfig, memberFlags, type MemberOptions } from './member-config';
export type { LeaderChange, Stopped, MemberEventMap, MemberLifecycle } from './lifecycle';
