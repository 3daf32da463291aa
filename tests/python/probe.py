"""Probe a fedmesh server the way a non-Rust admin tool would: over mutual TLS with
grpcio, list services and describe a method through server reflection (grpcio speaks
reflection v1alpha), check health, and try once without a client certificate.

Usage: probe.py HOST:PORT CA CERT KEY SERVICE METHOD
Prints one JSON object with what it saw.
"""

import json
import sys

import grpc
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc


def reflect(channel, request):
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    return next(iter(stub.ServerReflectionInfo(iter([request]), timeout=10)))


def main():
    target, ca, cert, key, service, method = sys.argv[1:7]
    with open(ca, "rb") as f:
        root = f.read()
    with open(cert, "rb") as f:
        chain = f.read()
    with open(key, "rb") as f:
        private = f.read()
    result = {}

    creds = grpc.ssl_channel_credentials(root, private, chain)
    with grpc.secure_channel(target, creds) as channel:
        listed = reflect(channel, reflection_pb2.ServerReflectionRequest(list_services=""))
        result["services"] = sorted(s.name for s in listed.list_services_response.service)

        found = reflect(
            channel, reflection_pb2.ServerReflectionRequest(file_containing_symbol=service)
        )
        package, _, short = service.rpartition(".")
        for raw in found.file_descriptor_response.file_descriptor_proto:
            fd = descriptor_pb2.FileDescriptorProto.FromString(raw)
            for svc in fd.service:
                if fd.package == package and svc.name == short:
                    for m in svc.method:
                        if m.name == method:
                            result["method"] = {
                                "input": m.input_type,
                                "output": m.output_type,
                            }

        health = health_pb2_grpc.HealthStub(channel)
        result["health"] = {
            name or "(server)": health_pb2.HealthCheckResponse.ServingStatus.Name(
                health.Check(health_pb2.HealthCheckRequest(service=name), timeout=10).status
            )
            for name in ("", service)
        }

    # Without a client certificate the server must refuse; the error shows on the first call.
    anonymous = grpc.ssl_channel_credentials(root)
    with grpc.secure_channel(target, anonymous) as channel:
        try:
            health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=10
            )
            result["without_certificate"] = "OK"
        except grpc.RpcError as error:
            result["without_certificate"] = error.code().name

    print(json.dumps(result))


if __name__ == "__main__":
    main()
