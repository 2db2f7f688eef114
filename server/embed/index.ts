/**
 * cairn as a library (etcd's embed package): `import { startMember, buildConfig, parseFlags } from 'cairn'`.
 * A member embedded in a Node program is the same member bin/cairn runs, with the same flags.
 */
export { startMember, type RunningMember } from './etcd';
export { buildConfig, parseFlags, FlagError, type ServerConfig, type ParsedFlags } from './config';
