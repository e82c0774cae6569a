module github.com/ringwise/ringwise

go 1.26.0

require (
	github.com/nats-io/nats.go v1.55.0
	github.com/ringwise/ringwise/analyzer v0.0.0
	github.com/ringwise/ringwise/bpf v0.0.0
	github.com/ringwise/ringwise/enricher v0.0.0
	github.com/ringwise/ringwise/sensor v0.0.0
	github.com/ringwise/ringwise/services v0.0.0
	golang.org/x/sync v0.20.0
)

require (
	github.com/antithesishq/antithesis-sdk-go v0.8.0-default-no-op // indirect
	github.com/cilium/ebpf v0.22.0 // indirect
	github.com/google/go-tpm v0.9.8 // indirect
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/minio/highwayhash v1.0.4 // indirect
	github.com/nats-io/jwt/v2 v2.8.2 // indirect
	github.com/nats-io/nats-server/v2 v2.15.2 // indirect
	github.com/nats-io/nkeys v0.4.16 // indirect
	github.com/nats-io/nuid v1.0.1 // indirect
	github.com/vmihailenco/msgpack/v5 v5.4.1 // indirect
	github.com/vmihailenco/tagparser/v2 v2.0.0 // indirect
	golang.org/x/crypto v0.58.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
	golang.org/x/time v0.16.0 // indirect
)

replace github.com/ringwise/ringwise/services => ./services

replace github.com/ringwise/ringwise/bpf => ./bpf

replace github.com/ringwise/ringwise/sensor => ./sensor

replace github.com/ringwise/ringwise/enricher => ./enricher

replace github.com/ringwise/ringwise/analyzer => ./analyzer
