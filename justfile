# Thin wrappers over go commands; the README gives the same commands.

# Run the main job: a three-peer mesh scanning the Go sources.
demo:
    go run ./cmd/blixard demo

# Every test, under the race detector (cluster tests need Docker).
test:
    go test -race ./...

# Unit and in-process tests only, quick.
test-short:
    go test -short ./...

# The Docker cluster scenarios: kill, pause, partition, restart, chaos.
cluster-test:
    go test -count=1 -timeout 30m -v ./examples/cluster/

# Static binaries for small peers.
build:
    CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -o bin/blixard-linux-amd64 ./cmd/blixard
    CGO_ENABLED=0 GOOS=linux GOARCH=arm64 go build -o bin/blixard-linux-arm64 ./cmd/blixard

lint:
    gofmt -l .
    go vet ./...

# Benchmarks: submit-to-start latency and noop throughput on loopback meshes.
bench:
    go test -run '^$' -bench . -benchtime 200x -count 5 ./scheduler/
