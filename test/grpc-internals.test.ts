// The grpc-js internals fenced in proto/grpc-internals.ts. Preframed messages: grpc-js sends them without its copy, the bytes on the wire
// are the same, and every other message takes grpc-js's own path.
import * as grpc from '@grpc/grpc-js';
import * as http2 from 'node:http2';
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FramePool } from '@dpfed/proto/frame-pool';
import { installPreframedSends, MESSAGE_PREFIX_BYTES, preframed, widenServerFlowControl as widenHttp2Windows } from '@dpfed/proto/grpc-internals';
import { FLOW_CONTROL_WINDOW, widenServerFlowControl } from '@dpfed/proto/wire';

const require = createRequire(import.meta.url);

describe('installPreframedSends', () => {
  it('wraps both sides of the grpc-js this project pins (an upgrade that moves them fails here)', () => {
    expect(installPreframedSends()).toEqual({ server: true, client: true });
    expect(installPreframedSends()).toEqual({ server: true, client: true }); // once per process
  });

  it('the server side frames a marked message in place and copies any other as before', () => {
    installPreframedSends();
    const { BaseServerInterceptingCall } = require('@grpc/grpc-js/build/src/server-interceptors.js');
    const call = { handler: { serialize: (value: Buffer) => value } };
    const pool = new FramePool();
    const message = pool.take(6);
    message.set([1, 2, 3, 4, 5, 6]);
    const framed: Buffer = BaseServerInterceptingCall.prototype.serializeMessage.call(call, message);
    expect(framed.buffer).toBe(message.buffer); // no copy
    expect([...framed]).toEqual([0, 0, 0, 0, 6, 1, 2, 3, 4, 5, 6]);
    const plain = Buffer.alloc(5000, 7); // above the size Node serves from its shared small-buffer pool
    const copied: Buffer = BaseServerInterceptingCall.prototype.serializeMessage.call(call, plain);
    expect(copied.buffer).not.toBe(plain.buffer);
    expect([...copied.subarray(0, 5)]).toEqual([0, 0, 0, 0x13, 0x88]);
    expect(copied.subarray(5).equals(plain)).toBe(true);
  });

  it('the institution side frames a marked message in place', async () => {
    installPreframedSends();
    const { CompressionFilter } = require('@grpc/grpc-js/build/src/compression-filter.js');
    const identity = new CompressionFilter({}, {}).sendCompression;
    const message = new FramePool().take(5000);
    message.fill(3);
    const framed: Buffer = await identity.writeMessage(message, false);
    expect(framed.buffer).toBe(message.buffer);
    expect([...framed.subarray(0, 5)]).toEqual([0, 0, 0, 0x13, 0x88]);
    const plain = Buffer.alloc(5000, 3);
    const copied: Buffer = await identity.writeMessage(plain, false);
    expect(copied.buffer).not.toBe(plain.buffer);
    expect(copied.equals(framed)).toBe(true);
  });

  it('refuses to mark a message without room for the prefix', () => {
    expect(() => preframed(Buffer.allocUnsafeSlow(8))).toThrow(/needs 5 free bytes in front of it, it has 0/);
    expect(preframed(Buffer.allocUnsafeSlow(8).subarray(MESSAGE_PREFIX_BYTES)).length).toBe(3);
  });
});

describe('preframed messages over real gRPC', () => {
  // A bidirectional echo whose messages are raw bytes: the server answers each message with its bytes reversed.
  const method: grpc.MethodDefinition<Buffer, Buffer> = {
    path: '/test.Echo/Chat',
    requestStream: true,
    responseStream: true,
    requestSerialize: (b) => b,
    requestDeserialize: (b) => b,
    responseSerialize: (b) => b,
    responseDeserialize: (b) => b,
  };
  let server: grpc.Server;
  let port = 0;
  const serverPool = new FramePool();

  beforeAll(async () => {
    installPreframedSends();
    server = new grpc.Server();
    server.addService({ Chat: method } as grpc.ServiceDefinition, {
      Chat: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
        call.on('data', (message: Buffer) => {
          const out = message.length >= 16 ? serverPool.take(message.length) : Buffer.alloc(message.length);
          for (let i = 0; i < message.length; i++) out[i] = message[message.length - 1 - i];
          call.write(out, () => message.length >= 16 && serverPool.give(out));
        });
        call.on('end', () => call.end());
      },
    });
    port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  });

  afterAll(() => server.forceShutdown());

  it('carries preframed and plain messages both ways, of sizes around the prefix and chunk boundaries, byte for byte', async () => {
    const Client = grpc.makeGenericClientConstructor({ Chat: method } as grpc.ServiceDefinition, 'Echo');
    const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & { Chat(): grpc.ClientDuplexStream<Buffer, Buffer> };
    const stream = client.Chat();
    const received: Buffer[] = [];
    const done = new Promise<void>((resolve, reject) => {
      stream.on('data', (b: Buffer) => received.push(Buffer.from(b)));
      stream.on('end', resolve);
      stream.on('error', reject);
    });
    const clientPool = new FramePool();
    const sizes = [1, 4, 5, 16, 1000, 16_384, 65_536 + 3, 3 * 1024 * 1024 + 1];
    const sent: Buffer[] = [];
    for (const [k, size] of sizes.entries()) {
      const message = k % 2 === 0 ? clientPool.take(size) : Buffer.alloc(size);
      for (let i = 0; i < size; i++) message[i] = (i * 31 + k) & 0xff;
      sent.push(Buffer.from(message));
      await new Promise<void>((resolve) => stream.write(message, () => resolve()));
      if (k % 2 === 0) clientPool.give(message);
    }
    stream.end();
    await done;
    client.close();
    expect(received.map((b) => b.length)).toEqual(sizes);
    received.forEach((b, k) => expect(b.equals(Buffer.from(sent[k]).reverse()), `message ${k} of ${sizes[k]} bytes`).toBe(true));
  });
});

describe('widenServerFlowControl', () => {
  it('widens the stream window each accepted HTTP/2 session advertises (an upgrade that hides http2Servers fails here)', async () => {
    const server = new grpc.Server();
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    try {
      expect(widenServerFlowControl(server)).toBe(true);
      const session = http2.connect(`http://127.0.0.1:${port}`);
      try {
        const settings = await new Promise<http2.Settings>((resolve, reject) => {
          session.on('remoteSettings', (s) => s.initialWindowSize !== 65_535 && resolve(s));
          session.on('error', reject);
        });
        expect(settings.initialWindowSize).toBe(FLOW_CONTROL_WINDOW);
      } finally {
        session.destroy();
      }
    } finally {
      server.forceShutdown();
    }
  });

  it('leaves a server without the internal alone and says so', () => {
    expect(widenHttp2Windows({} as grpc.Server, 1 << 20)).toBe(false);
    expect(widenHttp2Windows({ http2Servers: new Map() } as unknown as grpc.Server, 1 << 20)).toBe(false);
  });
});
