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
# Cloud Run sets PORT; the service listens on 0.0.0.0:$PORT (default 8080).
EXPOSE 8080
ENTRYPOINT ["/app/service"]
