# syntax=docker/dockerfile:1
#
# dpfed container images. Two final targets:
#
#   docker build --target wasm -t dpfed:0.1.0-wasm .
#       Node 20 on Debian; TensorFlow.js runs on its WebAssembly backend (no native TensorFlow).
#       Fits the coordinator, the simulation sweep and CPU-only institutions.
#
#   docker build --target tensorflow-gpu -t dpfed:0.1.0-gpu .
#       The same application on an NVIDIA CUDA runtime base with @tensorflow/tfjs-node-gpu, for an
#       institution that trains on a GPU node (`dpfed client --backend tensorflow-gpu`).
#
# Both hold the compiled workspace packages (dist/ of each, built in the `build` stage) with their
# production dependencies, run as an unprivileged user and start the `dpfed` launcher with the V8 heap flag that
# cli/node-heap.ts explains (--initial-old-space-size=128: without it a long-running coordinator or
# institution runs a full mark-compact almost every round). Arguments after the image name are the
# dpfed subcommand and its flags, e.g. `docker run dpfed:0.1.0-wasm coordinator --help`.
#
# docs/deployment.md covers building, the TLS secrets and the Kubernetes manifests in deploy/k8s.

ARG NODE_IMAGE=node:20-bookworm-slim
# @tensorflow/tfjs-node-gpu 4.22 loads libtensorflow 2.9, built for CUDA 11 and cuDNN 8; the CUDA 11.8
# runtime keeps the same library sonames (libcudart.so.11.0, libcublas.so.11, libcudnn.so.8).
ARG CUDA_IMAGE=nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04
ARG TFJS_NODE_GPU_VERSION=4.22.0

# ---------------------------------------------------------------------------------------------------
# Node itself, copied into the CUDA image below. The official Node binaries are built against an old
# glibc, so they run on Ubuntu 22.04 as they do on Debian.
FROM ${NODE_IMAGE} AS node

# ---------------------------------------------------------------------------------------------------
# The compiled workspace packages: a development install (TypeScript) builds every package's dist/
# (tools/workspaces/build.mjs), collected under /opt/built with the same paths for the final stages. Install
# scripts are skipped here: the compiler needs no native addon.
FROM ${NODE_IMAGE} AS build
WORKDIR /opt/dpfed
COPY . ./
RUN npm ci --ignore-scripts --omit=optional --no-audit --no-fund \
 && node tools/workspaces/build.mjs \
 && mkdir -p /opt/built \
 && cp -r --parents */dist /opt/built/

# ---------------------------------------------------------------------------------------------------
# Production dependencies for the wasm image. better-sqlite3 compiles its native addon when no prebuilt
# binary matches, hence the compiler; it stays in this stage. The optional native TensorFlow packages
# are left out: they download libtensorflow at install time and the wasm image does not use them. The
# workspace packages' folders come along (npm links them into node_modules); their dist/ comes from the
# build stage, and the root's prepare step skips the build here (no TypeScript in a production install).
FROM ${NODE_IMAGE} AS wasm-deps
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/dpfed
COPY . ./
# resvg (the PNG plots of `dpfed sim`) ships its native binary as an optional package per platform: the
# one of this image's architecture is installed explicitly, since optional packages are left out.
RUN npm ci --omit=dev --omit=optional --no-audit --no-fund \
 && npm install --no-save --omit=dev --omit=optional --no-audit --no-fund \
      "@resvg/resvg-js-linux-$(node -p process.arch)-gnu@$(node -p "require('@resvg/resvg-js/package.json').version")" \
 && npm cache clean --force

# ---------------------------------------------------------------------------------------------------
# Production dependencies for the GPU image, built on the CUDA base itself so the native addons link
# against the glibc they will run with. `npm ci --omit=dev` installs the lockfile's optional packages
# too; the CPU build of native TensorFlow (@tensorflow/tfjs-node) is removed afterwards, keeping
# tfjs-node-gpu, whose install step downloads libtensorflow with GPU support.
FROM ${CUDA_IMAGE} AS gpu-deps
ARG TFJS_NODE_GPU_VERSION
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/npm
RUN ln -s /usr/local/lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm
WORKDIR /opt/dpfed
COPY . ./
RUN npm ci --omit=dev --no-audit --no-fund \
 && test "$(node -p "require('@tensorflow/tfjs-node-gpu/package.json').version")" = "${TFJS_NODE_GPU_VERSION}" \
 && rm -rf node_modules/@tensorflow/tfjs-node \
 && npm cache clean --force

# ---------------------------------------------------------------------------------------------------
# Final GPU image. Schedule it on a node with an NVIDIA GPU and the NVIDIA container runtime
# (deploy/k8s/overlays/gpu).
FROM ${CUDA_IMAGE} AS tensorflow-gpu
ENV NODE_ENV=production \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
COPY --from=node /usr/local/bin/node /usr/local/bin/node
RUN groupadd --system --gid 10001 dpfed \
 && useradd --system --uid 10001 --gid dpfed --home-dir /var/lib/dpfed --shell /usr/sbin/nologin dpfed \
 && mkdir -p /var/lib/dpfed \
 && chown dpfed:dpfed /var/lib/dpfed
WORKDIR /opt/dpfed
COPY --from=gpu-deps /opt/dpfed/node_modules ./node_modules
COPY . ./
COPY --from=build /opt/built/ ./
WORKDIR /var/lib/dpfed
USER 10001:10001
EXPOSE 50051 8080 9464
ENTRYPOINT ["node", "--initial-old-space-size=128", "/opt/dpfed/bin/dpfed.js"]
CMD ["--help"]

# ---------------------------------------------------------------------------------------------------
# Final wasm image: the last stage, so a plain `docker build .` builds it.
FROM ${NODE_IMAGE} AS wasm
ENV NODE_ENV=production
# a font for the text of the simulation plots rendered to PNG
RUN apt-get update \
 && apt-get install -y --no-install-recommends fonts-dejavu-core \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 dpfed \
 && useradd --system --uid 10001 --gid dpfed --home-dir /var/lib/dpfed --shell /usr/sbin/nologin dpfed \
 && mkdir -p /var/lib/dpfed \
 && chown dpfed:dpfed /var/lib/dpfed
WORKDIR /opt/dpfed
# Application files stay owned by root, so the process cannot rewrite its own code.
COPY --from=wasm-deps /opt/dpfed/node_modules ./node_modules
COPY . ./
COPY --from=build /opt/built/ ./
# The working directory is where dpfed's default paths land (./<institution>.identity, ./dpfed.sqlite):
# a volume in a deployment.
WORKDIR /var/lib/dpfed
USER 10001:10001
# gRPC (coordinator), compliance console, health and metrics
EXPOSE 50051 8080 9464
ENTRYPOINT ["node", "--initial-old-space-size=128", "/opt/dpfed/bin/dpfed.js"]
CMD ["--help"]

