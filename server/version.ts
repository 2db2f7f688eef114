/** The etcd API version cairn speaks. kube-apiserver gates RequestWatchProgress on >= 3.5.13 (semver, no suffix). */
export const SERVER_VERSION = '3.5.17';
/** The cluster version reported on /version, as etcd reports major.minor.0. */
export const CLUSTER_VERSION = '3.5.0';
/** cairn's own release, logged at start. */
export const CAIRN_VERSION = '0.1.0';
