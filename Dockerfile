# syntax=docker/dockerfile:1

# Build: cgo is on, for the embedded SQLite (mattn/go-sqlite3).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=1 go build -trimpath \
      -ldflags "-s -w -X github.com/switchyard/switchyard/app.Version=${VERSION}" \
      -o /out/switchyard ./cmd/switchyard \
 && mkdir -p /out/state

# Run: glibc (for cgo) and CA certificates, no shell, non-root (65532).
FROM gcr.io/distroless/base-debian12:nonroot
COPY --from=build /out/switchyard /usr/local/bin/switchyard
COPY config.example.yaml /etc/switchyard/config.yaml
# storage.dir (./data in the example) lives here: mount a volume on it.
COPY --from=build --chown=65532:65532 /out/state /var/lib/switchyard
WORKDIR /var/lib/switchyard
VOLUME ["/var/lib/switchyard"]
USER nonroot:nonroot
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/switchyard"]
CMD ["serve", "--config", "/etc/switchyard/config.yaml", "--log-format", "json"]
