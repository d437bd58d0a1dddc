# syntax=docker/dockerfile:1
# arcseal's image: both binaries, statically linked against musl, on an empty base, as a non-root user.
#
#   docker build -t arcseal-controller:0.1.0 .
#   docker run --rm arcseal-controller:0.1.0 unseal --help      # the entrypoint is arcseal-controller
#   docker run --rm --entrypoint /usr/local/bin/arcseal arcseal-controller:0.1.0 --help
#
# deploy/ runs the same image twice: `unseal` as uid 65532 (the USER below), `csi-provider` as uid 0 without any
# capability (its socket directory on the node is root's; see deploy/README.md). Nothing here writes to the root
# filesystem, so both run with readOnlyRootFilesystem. Multi-arch: build per platform (buildx + QEMU or native
# runners); the Rust target follows the build platform.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS build
# musl-tools: musl-gcc for aws-lc-sys's C code; the rest are what aws-lc-sys may use when it builds with CMake.
RUN apt-get update \
    && apt-get install -y --no-install-recommends musl-tools cmake clang ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN case "$(uname -m)" in \
        x86_64) echo x86_64-unknown-linux-musl ;; \
        aarch64) echo aarch64-unknown-linux-musl ;; \
        *) echo "unsupported build architecture $(uname -m)" >&2; exit 1 ;; \
    esac >/rust-target \
    && rustup target add "$(cat /rust-target)"
WORKDIR /src
# BuildKit cache mounts keep the crates and the target directory between builds (no stub-crate layer to rot).
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    target="$(cat /rust-target)" \
    && cargo build --locked --release --target "$target" -p arcseal-controller -p arcseal \
        --bin arcseal-controller --bin arcseal \
    && mkdir -p /out \
    && cp "target/$target/release/arcseal-controller" "target/$target/release/arcseal" /out/ \
    && ! ldd /out/arcseal-controller 2>/dev/null | grep -q '=>'  # fail if dynamically linked

FROM scratch
ARG VERSION=0.1.0
# scripts/build-image reads these lines and sets the same labels (and the same USER, EXPOSE and paths).
LABEL org.opencontainers.image.title="arcseal-controller"
LABEL org.opencontainers.image.description="arcseal: SealedSecrets controller and Secrets Store CSI provider"
LABEL org.opencontainers.image.licenses="Apache-2.0"
LABEL org.opencontainers.image.version="${VERSION}"
# The system CA bundle for Key Vault and Entra ID (the provider's --ca-bundle adds private CAs to it).
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/arcseal-controller /out/arcseal /usr/local/bin/
USER 65532:65532
EXPOSE 8080 8081 8898
ENTRYPOINT ["/usr/local/bin/arcseal-controller"]
