import type * as grpc from '@grpc/grpc-js';
import type { AuthInfo, AuthServer } from '../etcdserver/interfaces';

/** etcd's rpctypes.TokenFieldNameGRPC and TokenFieldNameSwagger (the JSON gateway's header). */
export const TOKEN_FIELD_GRPC = 'token';
export const TOKEN_FIELD_SWAGGER = 'authorization';

/** A call of any kind: what is needed to find who makes it. */
type AnyCall = { metadata: grpc.Metadata; getAuthContext?: () => { transportSecurityType?: string; sslPeerCertificate?: { subject?: { CN?: string | string[] } } } | undefined };

export interface AuthResolver {
  /** Who makes this call: from its token, else (with --client-cert-auth) its certificate's CN; undefined = nobody. */
  authInfo(call: AnyCall): Promise<AuthInfo | undefined>;
}

/**
 * The CN of the client certificate grpc-js verified, or undefined on a plaintext or
 * certificate-less connection (etcd's AuthInfoFromTLS takes chains[0].Subject.CommonName).
 * grpc-js reports the peer certificate whether or not it was verified: only a listener built with
 * checkClientCertificate=true (requestCert + rejectUnauthorized, i.e. --client-cert-auth) makes it
 * a verified one, which is why the resolver reads it only with clientCertAuth set.
 */
export function userFromCertificate(call: AnyCall): string | undefined {
  const ctx = call.getAuthContext?.();
  // Only a TLS connection's certificate (transport/tls/peer-identity.ts: the client listener hands
  // grpc-js the TLSSocket itself, so grpc-js reports what the handshake verified).
  if (ctx?.transportSecurityType !== 'ssl') return undefined;
  const cn = ctx.sslPeerCertificate?.subject?.CN;
  const name = Array.isArray(cn) ? cn[0] : cn;
  return name ? name : undefined;
}

/**
 * etcd's AuthInfoFromCtx (server side): the `token` metadata, or `authorization`; a token that
 * does not resolve fails the call with "etcdserver: invalid auth token". Without a token, and
 * only with --client-cert-auth, the verified certificate's CN is the user — except for requests
 * relayed by the gRPC gateway (grpcgateway-accept), whose certificate is the server's own.
 */
export function authResolver(auth: AuthServer, opts: { clientCertAuth: boolean }): AuthResolver {
  return {
    async authInfo(call) {
      const token = first(call.metadata, TOKEN_FIELD_GRPC) ?? first(call.metadata, TOKEN_FIELD_SWAGGER);
      if (token !== undefined) return auth.authInfoFromToken(token);
      if (!opts.clientCertAuth) return undefined;
      if (call.metadata.get('grpcgateway-accept').length > 0) return undefined;
      const cn = userFromCertificate(call);
      return cn === undefined ? undefined : auth.authInfoFromCommonName(cn);
    },
  };
}

function first(md: grpc.Metadata, key: string): string | undefined {
  const v = md.get(key)[0];
  if (v === undefined) return undefined;
  return typeof v === 'string' ? v : v.toString();
}
