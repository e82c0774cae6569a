# nats-server v2.15.2, built from its Go module (scripts/tools.sh), FROM scratch.
# Legacy builder (DOCKER_BUILDKIT=0); context: the repository root.
FROM golang:1.26-bookworm AS build
COPY scripts/tools.sh /src/scripts/tools.sh
COPY deployments/docker/binaries.sh /src/deployments/docker/binaries.sh
COPY deployments/docker/healthcheck /src/deployments/docker/healthcheck
COPY deployments/docker/bin/.gitignore deployments/docker/bin/nats-server* deployments/docker/bin/healthcheck* /prebuilt/
RUN bash /src/deployments/docker/binaries.sh container nats-server /out \
 && bash /src/deployments/docker/binaries.sh container healthcheck /out \
 && mkdir -p /rootfs/data /rootfs/tmp && chown 65532:65532 /rootfs/data /rootfs/tmp && chmod 1777 /rootfs/tmp

FROM scratch
COPY --from=build /out/nats-server /out/healthcheck /
# /data is the JetStream store; owned by the server's user so that a named
# volume mounted there starts with that owner.
COPY --from=build /rootfs/ /
USER 65532:65532
VOLUME /data
EXPOSE 4222 8222
HEALTHCHECK --interval=5s --timeout=4s --retries=12 CMD ["/healthcheck", "http://127.0.0.1:8222/healthz?js-enabled-only=true"]
ENTRYPOINT ["/nats-server"]
CMD ["--config", "/etc/nats/nats.conf"]
