# ringwise: one static binary for the sensor, enricher and analyzer services.
# Built with the legacy builder (DOCKER_BUILDKIT=0; see deployments/offline):
# golang:1.26-bookworm is the only base image, made locally by
# deployments/offline/prepare.sh. Context: the repository root (.dockerignore).
FROM golang:1.26-bookworm AS build
COPY go.mod go.sum go.work go.work.sum /src/
COPY cmd /src/cmd
COPY internal /src/internal
COPY services /src/services
COPY bpf /src/bpf
COPY sensor /src/sensor
COPY enricher /src/enricher
COPY analyzer /src/analyzer
COPY deployments/go.mod deployments/go.sum /src/deployments/
COPY deployments/docker/binaries.sh /src/deployments/docker/binaries.sh
COPY deployments/docker/healthcheck /src/deployments/docker/healthcheck
# The host's prebuilt binaries (deployments/docker/binaries.sh host), used
# only when built from this very source; .gitignore keeps the COPY valid
# when there are none.
COPY deployments/docker/bin/.gitignore deployments/docker/bin/ringwise* deployments/docker/bin/healthcheck* /prebuilt/
RUN bash /src/deployments/docker/binaries.sh container ringwise /out \
 && bash /src/deployments/docker/binaries.sh container healthcheck /out \
 && mkdir -p /rootfs/data && chown 65532:65532 /rootfs/data

FROM scratch
COPY --from=build /out/ringwise /out/healthcheck /
# /data: the JetStream store of `ringwise nats`, owned by the non-root user
# so that a named volume mounted there starts with that owner.
COPY --from=build /rootfs/ /
# Non-root by default: the enricher and analyzer need no privilege. The
# sensor's service sets user 0 with exactly the capabilities BPF needs.
USER 65532:65532
ENTRYPOINT ["/ringwise"]
CMD ["--help"]
