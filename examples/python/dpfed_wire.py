"""The dpfed wire contract, from proto/dpfed/v1/federation.proto alone.

generate_stubs() runs grpc_tools.protoc on the .proto into a temporary directory and imports the
generated modules; nothing generated is kept in the repository. The rest of this file is what the
.proto's comments specify beyond the messages: the canonical encoding of signed declarations
(RegisterRequest.signature) and the splitting of tensors into TensorChunk messages.
"""
import importlib
import os
import struct
import sys
import tempfile

REGISTER_CONTEXT = "dpfed.v1/register"
PROTOCOL_VERSION = 1


def generate_stubs(proto_path):
    """Generates federation_pb2 / federation_pb2_grpc from the .proto into a temp dir; returns (pb2, pb2_grpc)."""
    from grpc_tools import protoc
    import grpc_tools

    proto_path = os.path.abspath(proto_path)
    # the .proto's package is dpfed.v1: its include root is two folders above proto/dpfed/v1/federation.proto
    root = os.path.dirname(os.path.dirname(os.path.dirname(proto_path)))
    relative = os.path.relpath(proto_path, root)
    out = tempfile.mkdtemp(prefix="dpfed-python-stubs-")
    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    args = ["grpc_tools.protoc", "-I" + root, "-I" + well_known, "--python_out=" + out, "--grpc_python_out=" + out, relative]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed on %s" % proto_path)
    sys.path.insert(0, out)
    module = os.path.splitext(relative)[0].replace(os.sep, ".")
    return importlib.import_module(module + "_pb2"), importlib.import_module(module + "_pb2_grpc")


# ---------- canonical encoding (RegisterRequest.signature in the .proto) ----------

def _length_prefixed(tag, data):
    return tag + struct.pack(">I", len(data)) + bytes(data)


def canonical(context, fields):
    """context UTF-8, 0x00, then per field: 's' / 'b' uint32-BE length + bytes, 'f' float64-BE, 'u' uint64-BE."""
    out = [context.encode("utf-8"), b"\x00"]
    for tag, value in fields:
        if tag == "s":
            out.append(_length_prefixed(b"s", value.encode("utf-8")))
        elif tag == "b":
            out.append(_length_prefixed(b"b", value))
        elif tag == "f":
            out.append(b"f" + struct.pack(">d", 0.0 if value == 0 else float(value)))  # -0 written as +0
        elif tag == "u":
            if value < 0:
                raise ValueError("canonical encoding: integers are unsigned")
            out.append(b"u" + struct.pack(">Q", value))
        else:
            raise ValueError("canonical encoding: unknown tag %r" % tag)
    return b"".join(out)


def registration_declaration(nonce, institution_id, public_key, budget_epsilon, budget_delta, declared_examples,
                             schema_hash, ledger_seq, ledger_hash, receipt_seq, anchor_hash):
    """The bytes an institution signs into RegisterRequest.signature, fields 1-12 in the .proto's order."""
    return canonical(REGISTER_CONTEXT, [
        ("b", nonce),
        ("s", institution_id),
        ("b", public_key),
        ("u", PROTOCOL_VERSION),
        ("f", budget_epsilon),
        ("f", budget_delta),
        ("u", declared_examples),
        ("b", schema_hash),
        ("u", ledger_seq),
        ("b", ledger_hash),
        ("u", receipt_seq),
        ("b", anchor_hash),
    ])


# ---------- tensors ----------

def tensor_chunks(pb2, envelope, tensors, chunk_bytes):
    """TensorChunk messages of named tensors [(name, shape, dtype, little-endian bytes)], each <= chunk_bytes of data."""
    count = len(tensors)
    for index, (name, shape, dtype, data) in enumerate(tensors):
        total = len(data)
        offset = 0
        while True:
            piece = data[offset:offset + chunk_bytes]
            yield pb2.TensorChunk(envelope=envelope, name=name, shape=list(shape), dtype=dtype, total_bytes=total,
                                  offset=offset, data=piece, tensor_index=index, tensor_count=count)
            offset += len(piece)
            if offset >= total:
                break


def assemble_tensors(chunks):
    """Collects a DownloadModel stream into an ordered list of (name, shape, dtype, bytes); checks offsets."""
    tensors = []
    current = None
    for chunk in chunks:
        if current is None:
            if chunk.offset != 0 or chunk.tensor_index != len(tensors):
                raise ValueError("model stream: tensor %r starts at offset %d, index %d" % (chunk.name, chunk.offset, chunk.tensor_index))
            current = [chunk.name, list(chunk.shape), chunk.dtype, bytearray(), chunk.total_bytes]
        elif chunk.name != current[0] or chunk.offset != len(current[3]):
            raise ValueError("model stream: unexpected chunk of %r at offset %d" % (chunk.name, chunk.offset))
        current[3].extend(chunk.data)
        if len(current[3]) == current[4]:
            tensors.append((current[0], current[1], current[2], bytes(current[3])))
            current = None
    if current is not None:
        raise ValueError("model stream ended inside tensor %r" % current[0])
    return tensors
