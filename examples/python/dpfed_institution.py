#!/usr/bin/env python3
"""A dpfed institution in Python, built from proto/dpfed/v1/federation.proto alone.

It reads its own CSV with the federation's public schema, loads its Ed25519 identity (the 32-byte seed
file `dpfed identity init` writes, 64 hex characters) and its TLS files, joins with Challenge and Register
(a signed declaration), then loops on PullTask: TRAIN (download the global model, train logistic
regression locally, push the delta), EVALUATE (push exact score histograms; privacy "off" only), WAIT,
DONE (exit 0). It uses the separate unary/streaming calls, not the Session stream. Unsupported tasks
(secure aggregation, CKKS, record- or client-level DP, private evaluation, an MLP) are declined.

Exit codes: 0 the run is done; 2 bad flags or input files; 3 the coordinator refused a request (the
status code and the details, which name the field, are printed); 1 anything else.
--misbehave sends one deliberately malformed request (for tests) and exits 3 with the refusal.
"""
import argparse
import hashlib
import os
import random
import stat
import struct
import sys
import time

import dpfed_data
import dpfed_logistic
import dpfed_wire

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_PROTO = os.path.join(HERE, "..", "..", "proto", "dpfed", "v1", "federation.proto")
CLIENT_VERSION = "dpfed-python-example/1"
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


class Refused(Exception):
    """The coordinator refused a request: a gRPC status and details naming the field."""


def log(message):
    print("dpfed-python: " + message, file=sys.stderr, flush=True)


def parse_flags(argv):
    p = argparse.ArgumentParser(prog="dpfed_institution.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--coordinator", help="host:port of the coordinator")
    p.add_argument("--institution", help="this institution's enrolled id")
    p.add_argument("--data", help="the institution's CSV (header = the schema's columns)")
    p.add_argument("--schema", help="the federation's public data schema (JSON, dpfed-data-schema/1)")
    p.add_argument("--identity", help="Ed25519 identity key file: the 32-byte seed as 64 hex characters, mode 0600")
    p.add_argument("--tls-ca", help="the federation CA certificate (PEM)")
    p.add_argument("--tls-cert", help="this institution's client certificate (PEM)")
    p.add_argument("--tls-key", help="this institution's client key (PEM)")
    p.add_argument("--insecure", action="store_true", help="plaintext gRPC (no TLS); the coordinator must allow it")
    p.add_argument("--proto", default=DEFAULT_PROTO, help="the wire contract (default: the repository's federation.proto)")
    p.add_argument("--declared-examples", type=int, default=0, help="public example count to declare as FedAvg weight (0: none)")
    p.add_argument("--poll-ms", type=int, default=5000, help="long-poll wait of PullTask in ms")
    p.add_argument("--misbehave", choices=["wrong-shape", "bad-signature", "replayed-nonce"],
                   help="send one malformed request and exit 3 with the coordinator's refusal (tests)")
    p.add_argument("--print-schema-hash", action="store_true", help="print the schema's hash (hex) and exit")
    flags = p.parse_args(argv)
    needed = ["schema"] if flags.print_schema_hash else ["coordinator", "institution", "data", "schema", "identity"]
    if not flags.print_schema_hash and not flags.insecure:
        needed += ["tls_ca", "tls_cert", "tls_key"]
    for name in needed:
        if not getattr(flags, name):
            p.error("--%s is required" % name.replace("_", "-"))
    if flags.declared_examples < 0:
        p.error("--declared-examples must be a non-negative integer")
    if flags.poll_ms < 0:
        p.error("--poll-ms must be a non-negative integer")
    return flags


def load_identity(path):
    """The seed file as privacy/identity.ts writes it: 64 hex characters (one line), readable by its owner only."""
    from nacl.signing import SigningKey

    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        raise ValueError("--identity %s: key file is accessible by group or others (mode %04o); chmod 600 it" % (path, mode))
    with open(path, encoding="ascii") as f:
        text = f.read().strip()
    if len(text) != 64 or any(ch not in "0123456789abcdefABCDEF" for ch in text):
        raise ValueError("--identity %s: expected 64 hex characters (a 32-byte Ed25519 seed)" % path)
    return SigningKey(bytes.fromhex(text))


class Institution:
    def __init__(self, flags, pb2, pb2_grpc, signing_key, train_rows, validation_rows, schema_digest, tls):
        import grpc

        self.grpc = grpc
        self.flags, self.pb2 = flags, pb2
        self.key = signing_key
        self.train_rows, self.validation_rows = train_rows, validation_rows
        self.schema_digest = schema_digest
        options = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES), ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)]
        if flags.insecure:
            channel = grpc.insecure_channel(flags.coordinator, options=options)
        else:
            ca, cert, key = tls
            credentials = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)
            channel = grpc.secure_channel(flags.coordinator, credentials, options=options)
        self.channel = channel
        self.stub = pb2_grpc.FederationStub(channel)
        self.session = b""
        self.run_id = ""
        self.chunk_bytes = 4 * 1024 * 1024
        self.rng = random.Random()
        self.trained = 0
        self.evaluated = 0

    def call(self, what, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except self.grpc.RpcError as error:
            raise Refused("%s refused: %s: %s" % (what, error.code().name, error.details()))

    # ---------- joining ----------

    def register_request(self, challenge):
        public_key = bytes(self.key.verify_key)
        declaration = dpfed_wire.registration_declaration(
            nonce=challenge.nonce, institution_id=self.flags.institution, public_key=public_key,
            budget_epsilon=0.0, budget_delta=0.0,  # no budget declared: privacy "off" is all this example supports
            declared_examples=self.flags.declared_examples, schema_hash=self.schema_digest,
            ledger_seq=0, ledger_hash=b"",  # this example keeps no ledger of its own
            receipt_seq=challenge.receipt_seq, anchor_hash=b"")
        signature = self.key.sign(declaration).signature
        if self.flags.misbehave == "bad-signature":
            signature = bytes([signature[0] ^ 0x01]) + signature[1:]
        return self.pb2.RegisterRequest(
            institution_id=self.flags.institution, identity_public_key=public_key, protocol_version=1,
            client_version=CLIENT_VERSION, signature=signature, nonce=challenge.nonce,
            declared_examples=self.flags.declared_examples, schema_hash=self.schema_digest,
            ledger_head=self.pb2.LedgerHead(seq=0, hash=b"", signature=b""), anchor_hash=b"")

    def register(self):
        challenge = self.call("Challenge", self.stub.Challenge, self.pb2.ChallengeRequest(institution_id=self.flags.institution), timeout=30)
        request = self.register_request(challenge)
        response = self.call("Register", self.stub.Register, request, timeout=30)
        if self.flags.misbehave == "replayed-nonce":
            self.call("Register (the same request again)", self.stub.Register, request, timeout=30)
            raise RuntimeError("a replayed Register was accepted")
        self.session, self.run_id = response.session, response.run_id
        if response.max_chunk_bytes:
            self.chunk_bytes = response.max_chunk_bytes
        log("registered %s in run %s" % (self.flags.institution, self.run_id))

    def envelope(self, of=None):
        e = self.pb2.Envelope(run_id=self.run_id, institution_id=self.flags.institution, session=self.session)
        if of is not None:
            e.round, e.model_version = of.round, of.model_version
        return e

    # ---------- tasks ----------

    def run(self):
        self.register()
        while True:
            try:
                task = self.stub.PullTask(self.pb2.PullTaskRequest(envelope=self.envelope(), wait_ms=self.flags.poll_ms),
                                          timeout=self.flags.poll_ms / 1000 + 30)
            except self.grpc.RpcError as error:
                if error.code() in (self.grpc.StatusCode.UNAVAILABLE, self.grpc.StatusCode.DEADLINE_EXCEEDED):
                    log("coordinator unavailable (%s); retrying" % error.details())
                    time.sleep(1)
                    continue
                raise Refused("PullTask refused: %s: %s" % (error.code().name, error.details()))
            kind = self.pb2.TaskKind.Name(task.kind)
            if kind == "DONE":
                log("done (%s): trained %d rounds, evaluated %d" % (task.message, self.trained, self.evaluated))
                return
            if kind == "WAIT":
                time.sleep(task.retry_after_ms / 1000)
                continue
            try:
                if kind == "TRAIN":
                    self.train(task)
                elif kind == "EVALUATE":
                    self.evaluate(task)
                else:
                    self.decline(task, "unsupported", "this example implements TRAIN and EVALUATE only, not %s" % kind)
            except Refused as refusal:
                if self.flags.misbehave:
                    raise
                log("%s (round %d); waiting for the next task" % (refusal, task.envelope.round))

    def unsupported(self, task):
        """Why this example cannot do `task` (a TRAIN or EVALUATE task), or None. Reads the typed
        Task.model_spec and Task.config messages."""
        pb2 = self.pb2
        if not task.HasField("model_spec") or not task.HasField("config"):
            return "a task without model_spec or config"
        spec, config = task.model_spec, task.config
        if spec.kind != pb2.MODEL_KIND_LOGISTIC:
            return "model kind %s (this example trains logistic regression only)" % pb2.ModelKind.Name(spec.kind)
        if config.privacy.mode != pb2.PRIVACY_MODE_OFF:
            return "privacy mode %s (this example implements privacy off only)" % pb2.PrivacyMode.Name(config.privacy.mode)
        if config.aggregation != pb2.AGGREGATION_PLAIN:
            return "aggregation %s (this example implements plain aggregation only)" % pb2.Aggregation.Name(config.aggregation)
        if task.kind == pb2.EVALUATE and config.evaluation.HasField("private"):
            return "private evaluation (this example sends exact histograms only)"
        return None

    def decline(self, task, reason, detail):
        log("declining round %d: %s" % (task.envelope.round, detail))
        self.call("Decline", self.stub.Decline, self.pb2.DeclineRequest(envelope=self.envelope(task.envelope), reason=reason, detail=detail), timeout=30)

    def download(self, task):
        stream = self.stub.DownloadModel(self.pb2.ModelRequest(envelope=self.envelope(task.envelope), chunk_bytes=0, artifact=""), timeout=120)
        tensors = self.call("DownloadModel", dpfed_wire.assemble_tensors, stream)
        model = {}
        for name, shape, dtype, data in tensors:
            if dtype != self.pb2.FLOAT32:
                raise Refused("DownloadModel: tensor %s is not FLOAT32" % name)
            model[name] = (shape, list(struct.unpack("<%df" % (len(data) // 4), data)))
        return model

    def push(self, task, kind, tensors, metrics, num_examples):
        envelope = self.envelope(task.envelope)
        header = self.pb2.ResultHeader(envelope=envelope, kind=kind, num_examples=num_examples, metrics=metrics, tensor_count=len(tensors))

        def chunks():
            yield self.pb2.ResultChunk(header=header)
            for chunk in dpfed_wire.tensor_chunks(self.pb2, envelope, tensors, self.chunk_bytes):
                yield self.pb2.ResultChunk(tensor=chunk)

        ack = self.call("PushResult", self.stub.PushResult, chunks(), timeout=120)
        if not ack.accepted:
            raise Refused("PushResult not accepted: %s" % ack.message)

    def train(self, task):
        why = self.unsupported(task)
        if why:
            return self.decline(task, "unsupported", why)
        config = task.config
        model = self.download(task)
        (kshape, kernel), (_, bias) = model["dense_0/kernel"], model["dense_0/bias"]
        self.rng.seed("%s:%s" % (config.seed, self.flags.institution))
        features, labels = self.train_rows
        adam = config.optimizer == self.pb2.OPTIMIZER_ADAM
        weights, b, loss = dpfed_logistic.train(kernel, bias[0], features, labels, config, self.rng, adam)
        # TRAIN_RESULT carries the delta = trained - global, float32, clipped to the run's update bound
        delta = [w - k for w, k in zip(weights, kernel)] + [b - bias[0]]
        norm = sum(x * x for x in delta) ** 0.5
        bound = float(config.max_update_norm)
        if norm > bound:
            delta = [x * bound / norm for x in delta]
        d = len(kernel)
        kernel_shape = list(kshape)
        if self.flags.misbehave == "wrong-shape":
            kernel_shape = [kshape[1], kshape[0]]  # transposed: the coordinator must refuse it, naming tensor.shape
        tensors = [
            ("dense_0/kernel", kernel_shape, self.pb2.FLOAT32, struct.pack("<%df" % d, *delta[:d])),
            ("dense_0/bias", [1], self.pb2.FLOAT32, struct.pack("<f", delta[d])),
        ]
        self.push(task, self.pb2.TRAIN_RESULT, tensors, {"loss": loss}, len(labels))
        if self.flags.misbehave == "wrong-shape":
            raise RuntimeError("a result of the wrong shape was accepted")
        self.trained += 1
        log("round %d: trained, loss %.4f, update norm %.4f" % (task.envelope.round, loss, min(norm, bound)))

    def evaluate(self, task):
        why = self.unsupported(task)
        if why:
            return self.decline(task, "unsupported", why)
        model = self.download(task)
        kernel, bias = model["dense_0/kernel"][1], model["dense_0/bias"][1]
        bins, logit_range = int(task.config.evaluation.bins), float(task.config.evaluation.logit_range)
        features, labels = self.validation_rows
        positive, negative, loss, accuracy = dpfed_logistic.evaluate(kernel, bias[0], features, labels, bins, logit_range)
        tensors = [
            ("histogram/positive", [bins], self.pb2.UINT32, struct.pack("<%dI" % bins, *positive)),
            ("histogram/negative", [bins], self.pb2.UINT32, struct.pack("<%dI" % bins, *negative)),
        ]
        self.push(task, self.pb2.EVALUATE_RESULT, tensors, {"loss": loss, "accuracy": accuracy}, sum(positive) + sum(negative))
        self.evaluated += 1
        log("round %d: evaluated, loss %.4f, accuracy %.4f" % (task.envelope.round, loss, accuracy))


def read_input(flag, read):
    """Runs read(); an error becomes a message naming the flag (exit code 2)."""
    try:
        return read()
    except (OSError, ValueError, KeyError, TypeError, dpfed_data.DataError) as error:
        raise SystemExit("dpfed-python: %s: %s" % (flag, error)) from None


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def main(argv):
    flags = parse_flags(argv)
    try:
        schema = read_input("--schema", lambda: dpfed_data.read_schema(flags.schema))
        digest = read_input("--schema", lambda: dpfed_data.schema_hash(schema))
        if flags.print_schema_hash:
            print(digest.hex())
            return 0
        key = read_input("--identity", lambda: load_identity(flags.identity))
        tls = None if flags.insecure else tuple(read_input(flag, lambda path=path: read_bytes(path)) for flag, path in
                                                (("--tls-ca", flags.tls_ca), ("--tls-cert", flags.tls_cert), ("--tls-key", flags.tls_key)))
        features, labels = read_input("--data", lambda: dpfed_data.load_rows(flags.data, schema))
        pb2, pb2_grpc = read_input("--proto", lambda: dpfed_wire.generate_stubs(flags.proto))
    except SystemExit as failure:
        print(failure.code, file=sys.stderr)
        return 2
    split_key = hashlib.sha256(b"dpfed-python/split" + bytes(key)).digest()  # secret, stable per institution
    train_rows, validation_rows = dpfed_data.split_rows(features, labels, split_key)
    log("%d rows: %d for training, %d for validation" % (len(labels), len(train_rows[1]), len(validation_rows[1])))
    institution = Institution(flags, pb2, pb2_grpc, key, train_rows, validation_rows, digest, tls)
    try:
        institution.run()
    except Refused as refusal:
        print("dpfed-python: refused: %s" % refusal, file=sys.stderr, flush=True)
        return 3
    finally:
        institution.channel.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
