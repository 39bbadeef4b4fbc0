# syntax=docker/dockerfile:1
# The dynamo-archiver image: the release binary on Debian 12 slim, run as a non-root user.
# One tag for both architectures (Graviton is ARM64, the template's default):
#   docker buildx build --platform linux/arm64,linux/amd64 -t <registry>/dynamo-archiver:<tag> --push .
# docs/OPERATIONS.md, "Build and push the image", has the ECR steps.

# ---- build ----------------------------------------------------------------------------------
# rust:1-bookworm builds against Debian 12's glibc, the same as the runtime image below.
FROM rust:1-bookworm AS build
WORKDIR /build

# The dependencies in a layer of their own, rebuilt only when Cargo.toml, Cargo.lock or the
# benches change: the crate's sources are stubbed for this build. (The benches are copied because
# Cargo.toml names them; the --bin build does not compile them.)
COPY Cargo.toml Cargo.lock ./
COPY benches ./benches
RUN mkdir src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked --bin dynamo-archiver \
 && rm -rf src

# The crate itself. `touch`: COPY may keep modification times older than the stub build's, and
# cargo would then take the stub's output as up to date.
COPY src ./src
COPY schemas ./schemas
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --bin dynamo-archiver \
 && install -D -m 0755 target/release/dynamo-archiver /out/dynamo-archiver

# ---- runtime --------------------------------------------------------------------------------
# Why debian-slim and not gcr.io/distroless/cc-debian12:nonroot: an ECS container health check
# runs a command inside the container, distroless has no shell and no HTTP client, and the binary
# has no health-check command of its own. With distroless the worker could have no health check,
# and a worker whose shards are stuck (/healthz answers 503) would never be replaced. So:
# debian-slim plus curl (a few MB), run read-only (the task definitions set
# readonlyRootFilesystem) as an unprivileged user with no inbound ports. If the binary gains a
# `healthcheck` command, distroless becomes the better base.
FROM debian:bookworm-slim

# ca-certificates: the AWS SDK's TLS (rustls) trusts the system's root certificates.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 archiver \
 && useradd --system --uid 10001 --gid archiver --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin archiver \
 && install -d -o archiver -g archiver -m 0700 /var/spool/dynamo-archiver

COPY --from=build /out/dynamo-archiver /usr/local/bin/dynamo-archiver

# The spool (open Parquet files) is a task volume, so the root file system can be read-only.
# A non-root user can write to it because ECS copies the image's directory at a VOLUME path, owner
# included, into the task's bind mount at the same containerPath:
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/bind-mounts.html
ENV ARCHIVER_SPOOL_DIR=/var/spool/dynamo-archiver
VOLUME ["/var/spool/dynamo-archiver"]
# The HTTP endpoint (/healthz, /readyz, /metrics) of `run`.
EXPOSE 9464
USER 10001:10001

# For `docker run`; ECS ignores it and uses the task definition's healthCheck, which is the same
# command (infra/dynamo-archiver.yaml). It concerns `run` only: other commands serve no HTTP.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:9464/healthz"]

ENTRYPOINT ["/usr/local/bin/dynamo-archiver"]
CMD ["run"]
