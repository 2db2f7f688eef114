import type { PeerCertificate } from 'node:tls';

/**
 * The verified client certificate of a gRPC call on a TLS client listener, for the auth layer
 * (etcd's AuthInfoFromTLS: with --client-cert-auth and no token, the certificate's CN is the user).
 *
 * The client listener injects the TLSSocket itself into grpc-js, so grpc-js's own
 * `call.getAuthContext()` reports it: `sslPeerCertificate` is set only when the socket is a
 * TLSSocket whose peer certificate was verified (`socket.authorized`), which on a listener with
 * --client-cert-auth is every connection that got this far. Plaintext listeners, and TLS listeners
 * without client-cert-auth, give undefined. Works on unary and streaming calls alike.
 */
export interface CallWithAuthContext {
  getAuthContext(): { transportSecurityType?: string; sslPeerCertificate?: PeerCertificate };
}

export function verifiedPeerCertificate(call: CallWithAuthContext): PeerCertificate | undefined {
  const ctx = call.getAuthContext();
  return ctx.transportSecurityType === 'ssl' ? ctx.sslPeerCertificate : undefined;
}

/** The verified client certificate's subject CN, or undefined (no TLS, no verified certificate, no CN). */
export function verifiedCommonName(call: CallWithAuthContext): string | undefined {
  const cn = verifiedPeerCertificate(call)?.subject?.CN;
  return typeof cn === 'string' && cn !== '' ? cn : undefined;
}
