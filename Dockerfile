# syntax=docker/dockerfile:1
# rtae image: build the single binary with the pinned Bun (the `bun` npm devDependency), then ship only that
# binary on a small glibc base. The compiled binary embeds the Bun runtime, the worker entry point and every asset.

# ---- build ----------------------------------------------------------------------------------------------
FROM node:20-bookworm-slim AS build
WORKDIR /src
# dependency layer first, so a source change does not reinstall
COPY package.json package-lock.json ./
# Some npm versions skip install scripts; bun's installer then runs by hand (it only links the platform
# package npm already fetched). The lock pins @oven/bun-linux-x64 (needs AVX2; no -baseline variant) or
# -linux-aarch64, and the compiled binary embeds that runtime: run the image on such CPUs.
RUN npm ci --no-audit --no-fund \
 && (node_modules/.bin/bun --version || node node_modules/bun/install.js) \
 && node_modules/.bin/bun --version
COPY tsconfig.json bunfig.toml ./
COPY scripts/build.ts scripts/build.ts
COPY src src
RUN npm run build && ./dist/rtae version

# ---- runtime --------------------------------------------------------------------------------------------
# debian:bookworm-slim rather than distroless: the HEALTHCHECK needs an HTTP client (curl) and rtae has no
# `health` subcommand yet. With one, gcr.io/distroless/cc-debian12:nonroot would do (same glibc).
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 rtae \
 && useradd --system --uid 10001 --gid rtae --home-dir /data --shell /usr/sbin/nologin rtae \
 && mkdir -p /data \
 && chown rtae:rtae /data
COPY --from=build --chown=root:root --chmod=0755 /src/dist/rtae /usr/local/bin/rtae

ENV RTAE_DATA_DIR=/data \
    RTAE_HOST=0.0.0.0 \
    RTAE_PORT=8080
VOLUME /data
WORKDIR /data
USER 10001:10001
EXPOSE 8080

# liveness only (the process answers); orchestrators that route traffic should also probe /ready
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD curl -fsS -o /dev/null "http://127.0.0.1:${RTAE_PORT:-8080}/health" || exit 1

# rtae handles SIGTERM itself (drains, checkpoints, exits 0 within 20 s): give it a stop timeout above that
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/rtae"]
CMD ["serve"]
