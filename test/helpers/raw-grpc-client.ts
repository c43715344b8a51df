// A gRPC client of the dpfed Federation service that sends and receives raw bytes: every method of
// proto/dpfed/v1/federation.proto under its real path and streaming kind, but with identity serialisers,
// so a test can send frames that are not protobuf at all, or valid messages with bits flipped.
// encodeRequest writes any value a fuzzer makes up (a negative uint32, an enum number out of range, a
// string where a number belongs) the way protobufjs coerces it, through @grpc/proto-loader's reflection
// of the same .proto: the SDK's generated encoder refuses such values, and what is tested is the
// coordinator's decoding of whatever bytes arrive. decodeResponse decodes as the SDK does.
// Every call has a deadline, so a call the coordinator never answers ends as DEADLINE_EXCEEDED.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { join } from 'node:path';
import { CHANNEL_OPTIONS, federationService } from '@dpfed/proto/wire';
import { ROOT } from './federation-fixture.ts';

export const UNARY_METHODS = ['Challenge', 'Register', 'Heartbeat', 'PullTask', 'PushSecAgg', 'Decline'] as const;
export type UnaryMethod = (typeof UNARY_METHODS)[number];
export type FederationMethod = UnaryMethod | 'DownloadModel' | 'PushResult' | 'Session';

/** How a call ended: OK, or the status the coordinator sent, with every response message received. */
export interface RawOutcome {
  code: grpc.status;
  details: string;
  responses: Buffer[];
}

const identity = (b: Buffer): Buffer => b;

function rawServiceDefinition(): grpc.ServiceDefinition {
  return Object.fromEntries(
    Object.entries(federationService()).map(([name, m]) => [name, { ...m, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity }]),
  );
}

let lenient: grpc.ServiceDefinition | undefined;

/** The protobuf bytes of `message` as the request of `method`, loose values coerced by protobufjs fromObject. */
export function encodeRequest(method: FederationMethod, message: unknown): Buffer {
  if (!lenient) {
    const definition = protoLoader.loadSync(join(ROOT, 'proto', 'dpfed', 'v1', 'federation.proto'), { keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true });
    lenient = (grpc.loadPackageDefinition(definition) as unknown as { dpfed: { v1: { Federation: { service: grpc.ServiceDefinition } } } }).dpfed.v1.Federation.service;
  }
  return (lenient[method].requestSerialize as (value: unknown) => Buffer)(message);
}

/** A response of `method` decoded as the SDK decodes it. */
export function decodeResponse<T = Record<string, unknown>>(method: FederationMethod, bytes: Buffer): T {
  return (federationService()[method].responseDeserialize as (b: Buffer) => T)(bytes);
}

type AnyClient = grpc.Client & Record<string, (...args: unknown[]) => unknown>;

export class RawFederationClient {
  private readonly client: AnyClient;

  constructor(address: string, credentials: grpc.ChannelCredentials) {
    const Client = grpc.makeGenericClientConstructor(rawServiceDefinition(), 'Federation');
    this.client = new Client(address, credentials, CHANNEL_OPTIONS) as unknown as AnyClient;
  }

  close(): void {
    this.client.close();
  }

  unary(method: UnaryMethod, request: Buffer, deadlineMs: number): Promise<RawOutcome> {
    return new Promise((resolve) => {
      this.client[method](request, { deadline: Date.now() + deadlineMs }, (error: grpc.ServiceError | null, response: Buffer) =>
        resolve(error ? { code: error.code, details: error.details, responses: [] } : { code: grpc.status.OK, details: '', responses: [response] }),
      );
    });
  }

  /** DownloadModel: one request, every chunk until the status. */
  serverStream(method: 'DownloadModel', request: Buffer, deadlineMs: number): Promise<RawOutcome> {
    return new Promise((resolve) => {
      const responses: Buffer[] = [];
      const call = this.client[method](request, { deadline: Date.now() + deadlineMs }) as grpc.ClientReadableStream<Buffer>;
      call.on('data', (b: Buffer) => responses.push(b));
      call.on('error', (error: grpc.ServiceError) => resolve({ code: error.code, details: error.details, responses }));
      call.on('status', (s: grpc.StatusObject) => {
        if (s.code === grpc.status.OK) resolve({ code: s.code, details: s.details, responses });
      });
    });
  }

  /** PushResult: every frame, then the end of the request stream; the Ack or the status. */
  clientStream(method: 'PushResult', frames: Buffer[], deadlineMs: number): Promise<RawOutcome> {
    return new Promise((resolve) => {
      const call = this.client[method]({ deadline: Date.now() + deadlineMs }, (error: grpc.ServiceError | null, response: Buffer) =>
        resolve(error ? { code: error.code, details: error.details, responses: [] } : { code: grpc.status.OK, details: '', responses: [response] }),
      ) as grpc.ClientWritableStream<Buffer>;
      call.on('error', () => undefined); // the callback above reports it
      for (const frame of frames) call.write(frame);
      call.end();
    });
  }

  /** Session: a raw bidirectional stream; the caller writes frames and reads CoordinatorFrame bytes. */
  session(deadlineMs: number): grpc.ClientDuplexStream<Buffer, Buffer> {
    return this.client.Session({ deadline: Date.now() + deadlineMs }) as grpc.ClientDuplexStream<Buffer, Buffer>;
  }
}

/** A refusal's message names the field at fault: `field: ...`, `field.subfield: ...` (or `a or b: ...`). */
export const FIELD_PREFIX = /^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*( or [a-z][a-z0-9_.]*)?: /;

/** Why a call's outcome breaks the fuzz properties (a crash-like status, a hang, an unnamed field), or null. */
export function outcomeProblem(o: { code: grpc.status; details: string }): string | null {
  if (o.code === grpc.status.OK) return null;
  if (o.code === grpc.status.DEADLINE_EXCEEDED) return `no answer before the deadline (hang): ${o.details}`;
  if (o.code === grpc.status.INTERNAL || o.code === grpc.status.UNKNOWN) return `${grpc.status[o.code]}: ${o.details}`;
  if (o.code === grpc.status.UNAVAILABLE || o.code === grpc.status.CANCELLED) return `${grpc.status[o.code]} (the coordinator went away?): ${o.details}`;
  if (!FIELD_PREFIX.test(o.details ?? '')) return `${grpc.status[o.code]} without a field prefix: "${o.details}"`;
  return null;
}
