# Jaeger v1.76.0 all-in-one (memory storage), built from its Go module
# (scripts/tools.sh; ./cmd/jaeger), FROM scratch. The UI built from the
# module is a placeholder page: use the query API (/api/services,
# /api/traces?service=...). Legacy builder (DOCKER_BUILDKIT=0); context: the
# repository root.
FROM golang:1.26-bookworm AS build
COPY scripts/tools.sh /src/scripts/tools.sh
COPY deployments/docker/binaries.sh /src/deployments/docker/binaries.sh
COPY deployments/docker/healthcheck /src/deployments/docker/healthcheck
COPY deployments/docker/bin/.gitignore deployments/docker/bin/jaeger* deployments/docker/bin/healthcheck* /prebuilt/
RUN bash /src/deployments/docker/binaries.sh container jaeger /out \
 && bash /src/deployments/docker/binaries.sh container healthcheck /out \
 && mkdir -p /rootfs/tmp && chmod 1777 /rootfs/tmp

FROM scratch
COPY --from=build /out/jaeger /out/healthcheck /
COPY --from=build /rootfs/ /
USER 65532:65532
# OTLP gRPC and HTTP, query API/UI, health (healthcheckv2 extension).
ENV JAEGER_LISTEN_HOST=0.0.0.0
EXPOSE 4317 4318 16686 13133
HEALTHCHECK --interval=5s --timeout=4s --retries=12 CMD ["/healthcheck", "http://127.0.0.1:13133/status"]
ENTRYPOINT ["/jaeger"]
