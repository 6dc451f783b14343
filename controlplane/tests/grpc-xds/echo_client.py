"""Calls weft.echo.v1.Echo/Echo through gRPC's own xDS resolver.

Usage: GRPC_XDS_BOOTSTRAP=bootstrap.json python echo_client.py TARGET [CALLS]
  TARGET  e.g. xds:///echo.<ns>.svc.cluster.local:9090

Generates the Python stubs from e2e/echo/proto/echo.proto (grpc_tools),
makes CALLS calls (default 3) and prints one JSON line per call:
{"ok": true, "pod": ..., "namespace": ..., "peer": ...}, or
{"ok": false, "error": ...}. Exits 0 only if every call succeeded.
"""

import json
import os
import sys
import tempfile

import grpc
from grpc_tools import protoc

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "..", "e2e", "echo", "proto"))


def stubs():
    out = tempfile.mkdtemp(prefix="weft-echo-stubs-")
    rc = protoc.main([
        "protoc",
        f"-I{PROTO_DIR}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        os.path.join(PROTO_DIR, "echo.proto"),
    ])
    if rc != 0:
        raise SystemExit(f"protoc failed ({rc}) on {PROTO_DIR}/echo.proto")
    sys.path.insert(0, out)
    import echo_pb2  # noqa: E402
    import echo_pb2_grpc  # noqa: E402
    return echo_pb2, echo_pb2_grpc


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    target = sys.argv[1]
    calls = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    if not os.environ.get("GRPC_XDS_BOOTSTRAP"):
        raise SystemExit("GRPC_XDS_BOOTSTRAP is not set: point it at the xDS bootstrap JSON")
    pb, pb_grpc = stubs()
    ok = True
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.EchoStub(channel)
        for i in range(calls):
            try:
                # wait_for_ready: the first call waits for the xDS resolution
                r = stub.Echo(pb.EchoRequest(message=f"hello {i}"), timeout=20, wait_for_ready=True)
                print(json.dumps({"ok": True, "message": r.message, "pod": r.pod,
                                  "namespace": r.namespace, "peer": r.peer}), flush=True)
            except grpc.RpcError as e:
                ok = False
                print(json.dumps({"ok": False, "error": f"{e.code()}: {e.details()}"}), flush=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
