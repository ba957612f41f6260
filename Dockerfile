# syntax=docker/dockerfile:1
# One image per service binary, all from this workspace:
#   docker build --build-arg BIN=to-gcs -t REGISTRY/PATH/to-gcs:TAG .
# BIN is the Cargo package of the service: to-gcs, to-bq or sub-v2.

FROM rust:1.95-slim-bookworm AS builder
ARG BIN
RUN test -n "${BIN}" || { echo "set --build-arg BIN=<to-gcs|to-bq|sub-v2|replay>" >&2; exit 1; }
WORKDIR /src
# The whole workspace (every member's manifest is needed to resolve it); .dockerignore keeps
# target/, .emulators/ and .git/ out.
COPY . .
# Cache mounts keep the crates.io downloads and the build directory between builds; the binary is
# copied out of the cached target/ in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p "${BIN}" \
    && cp "target/release/${BIN}" /service

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /service /app/service
USER nonroot
# mimalloc gives freed memory back to the OS at once, not after its default delay: a large push's
# copies are freed one after another, and with the delay they were still resident when the next
# push allocated (sub-v2's peak under 32 x 9.3 MB pushes ~300 MiB instead of ~210; BENCHMARKS.md,
# "Memory"). An environment variable, so an operator's own setting (Cloud Run's env) wins; the
# bench scripts read it from here.
ENV MIMALLOC_PURGE_DELAY=0
# Cloud Run sets PORT; the service listens on 0.0.0.0:$PORT (default 8080).
EXPOSE 8080
ENTRYPOINT ["/app/service"]
