"""Asks a gRPC server's standard health service (grpc.health.v1.Health), with the client
gRPC itself publishes (PyPI's grpcio-health-checking), as a load balancer or Kubernetes'
gRPC probe would. Nothing here was written for `reasonkit-audit collect`.

    python ask_grpc_health.py HOST:PORT SERVICE...

Each SERVICE (`""` is the server as a whole) is asked with `Check`; one written
`watch:NAME` is asked with `Watch`, and the first status the stream sends is taken.
Prints one JSON object: each SERVICE and the status it was answered (`SERVING`,
`NOT_SERVING`), or the gRPC error's code (`NOT_FOUND` for a service the server does not
know).
"""

import json
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def main():
    target, services = sys.argv[1], sys.argv[2:]
    answers = {}
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in services:
            try:
                if service.startswith("watch:"):
                    request = health_pb2.HealthCheckRequest(service=service[len("watch:"):])
                    reply = next(stub.Watch(request, timeout=10))
                else:
                    reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
                answers[service] = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            except grpc.RpcError as error:
                answers[service] = error.code().name
    print(json.dumps(answers, sort_keys=True))


if __name__ == "__main__":
    main()
