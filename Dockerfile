# Verdict container image: build the TypeScript once, run with only production dependencies.
# docker build -t verdict:0.1.0 .
FROM node:20-bookworm-slim AS build
WORKDIR /app
# argon2 compiles its native binding on install (its prebuilt binary crashes on Node 20).
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
# npm ci runs the "prepare" script, which builds dist/: the sources must be in place first.
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY gen ./gen
COPY bench ./bench
COPY scripts ./scripts
COPY test/helpers ./test/helpers
COPY test/types ./test/types
RUN npm ci --no-audit --no-fund && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production VERDICT_DATA_DIR=/data
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
# The embedded database keeps password and key hashes: its directory is the node user's only.
RUN mkdir -p -m 0700 /data && chown node:node /data
USER node
EXPOSE 50051 8080
ENTRYPOINT ["node", "dist/src/main.js"]
