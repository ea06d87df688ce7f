# syntax=docker/dockerfile:1
# dcv-proxy in a container, as a sidecar in front of an application.
#
# The build stage runs exactly the steps CI runs on a clean Debian 12 box (.ci/run, scripts/run):
#   scripts/install-deps build          Debian packages the build needs (cmake, protoc, …)
#   cargo build --release --locked      the binary, from Cargo.lock
# so an image built here is the binary the tests ran against. The runtime stage is Debian 12
# slim with the binary, CA roots and a non-root user; state lives in a volume.
#
#   docker build -t dcv-proxy .
#   docker compose -f examples/docker-compose.yml up
#
# Inside the container the node listens on 8080 (HTTP) and 8443 (HTTPS) so it needs no
# capability; publish them as 80 and 443 (the CA only ever connects to 80 and 443).

ARG RUST_VERSION=1
FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# Dependencies first, so that a code change does not reinstall packages.
COPY scripts/install-deps scripts/install-deps
RUN scripts/install-deps build
COPY . .
RUN cargo build --release --locked \
 && install -m 0755 target/release/dcv-proxy /usr/local/bin/dcv-proxy

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 dcv-proxy \
 && useradd --system --uid 10001 --gid dcv-proxy --home-dir /var/lib/dcv-proxy \
      --shell /usr/sbin/nologin dcv-proxy \
 && install -d -o dcv-proxy -g dcv-proxy -m 0700 /var/lib/dcv-proxy
COPY --from=build /usr/local/bin/dcv-proxy /usr/local/bin/dcv-proxy
COPY examples/container/dcv-proxy.toml /etc/dcv-proxy/dcv-proxy.toml
USER dcv-proxy:dcv-proxy
# Certificates, keys, the ACME account, tokens and the admin token: keep them across restarts.
VOLUME ["/var/lib/dcv-proxy"]
EXPOSE 8080 8443
# `dcv-proxy health` asks the admin API's /healthz on loopback: no curl in the image.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
  CMD ["dcv-proxy", "health", "--config", "/etc/dcv-proxy/dcv-proxy.toml"]
# SIGTERM drains in-flight requests (server.grace_period); give the runtime longer than that
# before it kills (docker stop -t 40, compose stop_grace_period, terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM
ENTRYPOINT ["dcv-proxy", "--config", "/etc/dcv-proxy/dcv-proxy.toml"]
CMD ["run"]
