# Image of the gitpod.v1.EventService server.
#
#   docker build -t gitpod-event-server .
#   docker run --rm -p 127.0.0.1:8080:8080 -v "$PWD/config:/config:ro" \
#     -e AUTH_TOKENS_FILE=/config/tokens.json gitpod-event-server
#
# NODE_ENV=production: without a token source (AUTH_TOKENS_FILE, AUTH_JWT_SECRET or
# AUTH_JWKS_URL) the server refuses to start. See .ci/docker-smoke.sh for an end-to-end run.
#
# Builds with the classic builder too (no BuildKit-only syntax), so no `# syntax=` line.

# --- build: compile src/ to dist/ with the dev toolchain ---------------------------------------
FROM node:24-slim AS build
ENV NPM_CONFIG_UPDATE_NOTIFIER=false
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: the install scripts (node, @bufbuild/buf, esbuild) set up tools this build does
# not need (esbuild's only checks its binary, which its platform package brings anyway): the `node` dev dependency would download a second Node 24 binary, buf its
# CLI. Without that script no node_modules/.bin/node exists, so tsc runs on the base image's
# Node 24, the same version.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
# The live console (/console/), bundled by esbuild into dist/console.
COPY console ./console
COPY scripts/build-console.ts ./scripts/
RUN npm run build

# --- deps: production dependencies only -------------------------------------------------------
FROM node:24-slim AS deps
ENV NPM_CONFIG_UPDATE_NOTIFIER=false
WORKDIR /app
COPY package.json package-lock.json ./
# Only node_modules leaves this stage, so npm's cache never reaches the image.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# --- runtime ----------------------------------------------------------------------------------
FROM node:24-slim
ENV NODE_ENV=production \
    PORT=8080 \
    DATA_DIR=/data
WORKDIR /app
COPY --from=deps --chown=root:root /app/node_modules ./node_modules
COPY --from=build --chown=root:root /app/dist ./dist
# package.json's "type": "module" makes dist/*.js ES modules.
COPY --chown=root:root package.json ./
# The embedded SQLite store lives in /data: mount a volume there to keep it (without
# DATABASE_URL). Files stay owned by root, so the server cannot rewrite its own code.
RUN mkdir -p /data && chown node:node /data
VOLUME /data
USER node
EXPOSE 8080
# Liveness through node itself: slim images have no curl or wget.
HEALTHCHECK --interval=15s --timeout=3s --start-period=5s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.PORT||8080}/healthz`,{signal:AbortSignal.timeout(2500)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# Exec form, no npm or shell in between: node is PID 1 and gets SIGTERM from `docker stop`;
# it stops streams (unavailable), drains and exits 0 within SHUTDOWN_TIMEOUT_MS.
# --max-semi-space-size: see "Memory" in the README (the same as `npm start`).
CMD ["node", "--max-semi-space-size=8", "dist/main.js"]
