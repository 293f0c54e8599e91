# Pulse container image: `docker build -t pulse .` from the repository root.
# The build stage also builds the web UI (Debian's Node 18, which its pinned tools support),
# unless a web/dist built beforehand is in the context already.

# ---- build: the Debian packages of `scripts/deps.sh build`, a Release build of pulsed ----
FROM debian:12 AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        build-essential cmake pkg-config libuv1-dev node-llhttp libwebsockets-dev \
        libwebsockets-evlib-uv libjansson-dev libpq-dev libhiredis-dev libsodium-dev \
        nodejs npm \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# web/dist is optional (git-ignored, built by npm): make sure the runtime COPY finds a folder.
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DPULSE_TESTS=OFF \
    && cmake --build build -j"$(nproc)" \
    && strip build/pulsed \
    && if [ -f web/package.json ] && [ ! -f web/dist/index.html ]; then \
        (cd web && npm ci --no-audit --no-fund && npm run build); fi \
    && mkdir -p web/dist

# ---- runtime: slim Debian, runtime libraries only, non-root ----
FROM debian:12-slim
ARG DEBIAN_FRONTEND=noninteractive
# curl only for the HEALTHCHECK below
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libuv1 libjansson4 libpq5 libhiredis0.14 libsodium23 libwebsockets17 \
        libwebsockets-evlib-uv ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 pulse \
    && useradd --system --uid 10001 --gid pulse --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin pulse
WORKDIR /app
COPY --from=build /src/build/pulsed /usr/local/bin/pulsed
COPY --from=build /src/migrations /app/migrations
COPY --from=build /src/web/dist /app/web/dist
ENV PULSE_LISTEN=0.0.0.0:8080 \
    PULSE_MIGRATIONS_DIR=/app/migrations \
    PULSE_WEB_ROOT=/app/web/dist
# numeric so that Kubernetes' runAsNonRoot can verify it
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/health/live"]
# pulsed drains on SIGTERM (PULSE_SHUTDOWN_DELAY_MS, then PULSE_DRAIN_MS), then exits 0
STOPSIGNAL SIGTERM
ENTRYPOINT ["pulsed"]
CMD ["serve"]
