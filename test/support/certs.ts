/**
 * The test PKI (two CAs, leaf certificates made with the openssl CLI) lives with the verification
 * harness, whose --tls runs use it too; tests import it from here.
 */
export { fingerprint256, issueLeaf, makePki, revoke, type CertPair, type LeafOptions, type TestPki } from '../../cluster-tests/pki';
