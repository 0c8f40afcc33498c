# The one image of kube-static-egress-ip: every component runs from it with its own command
# (k8s/base/*.yaml, docker-compose.yml), e.g. `node src/watcher/main.ts`. Node 24 runs the .ts
# sources directly (type stripping), so there is no compile stage: stage 1 installs production
# dependencies only, stage 2 adds the agent's kernel tools and the sources.
#
# Users: the image runs as `node` (uid 1000), which is what the control-plane Deployments use.
# The node agent overrides it with runAsUser 0 plus only NET_ADMIN and NET_RAW (see
# k8s/base/agent.yaml): it must write root-owned /proc/sys/net files and program the host's
# netfilter and routing, which no unprivileged user can.
#
# Build: docker build -t kube-static-egress-ip:0.1.0 .   (needs the registry for npm and apt;
# offline machines: scripts/provision/node-image.sh makes a local node:24-slim, and
# test/docker-image.int.test.ts builds with --network=host).

FROM node:24-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# --omit=dev: the test environment's packages (testcontainers, typescript, eslint, ...) are
# devDependencies and stay out; .dockerignore keeps the tests and src/devenv out of the context.
# --ignore-scripts: no production dependency needs an install script, and none should run here.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

FROM node:24-slim
# The agent's dataplane tools: nft (nftables), ip and bridge (iproute2), arping (gratuitous ARP on
# failover), conntrack (flushing stale SNAT entries).
RUN apt-get update \
  && apt-get install -y --no-install-recommends nftables iproute2 arping conntrack \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# The commit the image was built from, for kseip_build_info and `kseip --version`
# (src/lib/build-info.ts):
# docker build --build-arg KSEIP_COMMIT=$(git rev-parse --short HEAD) ...
ARG KSEIP_COMMIT=unknown
ENV NODE_ENV=production \
    NODE_OPTIONS=--disable-warning=ExperimentalWarning \
    KSEIP_COMMIT=$KSEIP_COMMIT
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json ./
COPY src ./src
# The CLI on PATH, so `kubectl exec deploy/kseip-projector -- kseip …` works: it reads the same
# environment and mounted Secret as the component it runs next to (docs/cli.md).
COPY bin/kseip ./bin/kseip
RUN ln -s /app/bin/kseip /usr/local/bin/kseip
USER node
# Each component's health port (watcher/projector/status writer 8080, liveness 9465, agent 9464).
EXPOSE 8080 9464 9465
CMD ["node", "src/watcher/main.ts", "--help"]
