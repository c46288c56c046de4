# Multi-stage build: compile with the Rust toolchain, run from a small non-root image.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY config ./config
COPY benches ./benches
RUN cargo build --release --locked --bin tiercel

FROM debian:bookworm-slim
# CA certificates for https object stores (S3, GCS, Azure)
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --home /var/lib/tiercel tiercel \
 && mkdir -p /var/lib/tiercel && chown tiercel /var/lib/tiercel
COPY --from=build /src/target/release/tiercel /usr/local/bin/tiercel
COPY config/tiercel.toml /etc/tiercel/tiercel.toml
USER tiercel
VOLUME /var/lib/tiercel
ENV TIERCEL_LISTEN=0.0.0.0:9092 \
    TIERCEL_DATA_DIR=/var/lib/tiercel/data
EXPOSE 9092 9464
# healthy while the Kafka listener accepts connections
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9092"]
ENTRYPOINT ["/usr/local/bin/tiercel"]
