# The operator image: `docker build -t review-app-operator .` (or `just image`).
# The build stage compiles the release binary from the locked dependency versions, without the
# default `demo` feature (`--no-default-features`): the image's operator does not link the
# in-process API emulator, and its `demo` subcommand only says how to get it. The runtime stage
# is distroless (glibc and libgcc only: no shell, no package manager) and runs as the
# unprivileged `nonroot` user (uid 65532). The default command is `run`, the operator itself.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p review-app-operator --no-default-features

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/review-app-operator /usr/local/bin/review-app-operator
USER nonroot
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/review-app-operator"]
CMD ["run"]
