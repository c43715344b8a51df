// Admission at the gRPC edge: the enrolment check of Challenge, of Register and of each Session stream as it opens,
// taken before the request reaches the federation operations, with the TLS peer's certificate in hand
// (grpc-js exposes it on a server call through getAuthContext()). Under mutual TLS each Session stream is
// remembered under the institution its certificate binds, so a revocation can end that stream at once.
import type * as grpc from '@grpc/grpc-js';
import { certifiedInstitutionId } from '@dpfed/proto/tls-credentials';
import type { Enrolment, PeerCertificateId } from './enrolment.ts';
import type { InstitutionRegistry } from './institution-registry.ts';
import { grpcServiceError, permissionDenied, type RefusalObserver } from './rpc-error.ts';

type AnyCall = { getAuthContext?: () => { sslPeerCertificate?: import('node:tls').PeerCertificate } | null };
type SessionCall = grpc.ServerDuplexStream<unknown, unknown>;

const serviceError = (error: unknown, refused?: RefusalObserver): grpc.ServiceError => grpcServiceError(error, refused);

export interface PeerAdmission {
  handlers: grpc.UntypedServiceImplementation;
  /** Ends the open Session streams of these institutions with PERMISSION_DENIED (mutual TLS only). */
  cut(institutionIds: string[], reason: (id: string) => string): void;
}

/**
 * Wraps the federation's handlers so that Challenge, Register and Session are admitted first. With `mutualTls`
 * every peer presented a certificate of the federation CA (the handshake demands it), and the id that
 * certificate binds must be the institution's; without it there is no certificate to check and the
 * enrolment alone decides.
 */
export function admitPeers(handlers: grpc.UntypedServiceImplementation, o: { registry: InstitutionRegistry; enrolment: Enrolment; mutualTls: boolean; refused?: RefusalObserver }): PeerAdmission {
  const peerOf = (call: AnyCall): PeerCertificateId => {
    if (!o.mutualTls) return null;
    return { certifiedId: certifiedInstitutionId(call.getAuthContext?.()?.sslPeerCertificate) };
  };
  const sessions = new Map<string, Set<SessionCall>>();

  const challenge = handlers.Challenge as grpc.handleUnaryCall<{ institutionId: string }, unknown>;
  const register = handlers.Register as grpc.handleUnaryCall<{ institutionId: string; identityPublicKey: Uint8Array }, unknown>;
  const session = handlers.Session as grpc.handleBidiStreamingCall<unknown, unknown>;

  const wrapped: grpc.UntypedServiceImplementation = {
    ...handlers,
    // Challenge first: an id that is not enrolled (or revoked, or not the certificate's) never sees a nonce.
    Challenge: ((call: grpc.ServerUnaryCall<{ institutionId: string }, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      try {
        o.registry.admit({ institutionId: call.request.institutionId }, peerOf(call as AnyCall));
      } catch (error) {
        return callback(serviceError(error, o.refused));
      }
      challenge(call, callback);
    }) as grpc.UntypedHandleCall,
    Register: ((call: grpc.ServerUnaryCall<{ institutionId: string; identityPublicKey: Uint8Array }, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      try {
        o.registry.admit(call.request, peerOf(call as AnyCall));
      } catch (error) {
        return callback(serviceError(error, o.refused));
      }
      register(call, callback);
    }) as grpc.UntypedHandleCall,
    Session: ((call: SessionCall) => {
      const peer = peerOf(call as AnyCall);
      if (peer) {
        try {
          o.enrolment.admitCertificate(peer.certifiedId);
        } catch (error) {
          call.emit('error', serviceError(error, o.refused));
          return;
        }
        const id = peer.certifiedId!;
        const open = sessions.get(id) ?? new Set<SessionCall>();
        sessions.set(id, open);
        open.add(call);
        const forget = () => {
          open.delete(call);
          if (open.size === 0 && sessions.get(id) === open) sessions.delete(id);
        };
        call.once('close', forget);
        call.once('finish', forget);
        call.once('cancelled', forget);
      }
      session(call);
    }) as grpc.UntypedHandleCall,
  };

  return {
    handlers: wrapped,
    cut(institutionIds, reason) {
      for (const id of institutionIds) {
        for (const call of [...(sessions.get(id) ?? [])]) call.emit('error', serviceError(permissionDenied(reason(id)), o.refused));
        sessions.delete(id);
      }
    },
  };
}
