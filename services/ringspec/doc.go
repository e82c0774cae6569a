// Package ringspec is ringwise's vocabulary for BPF rings: the layouts, the
// Falco-compatible size presets, ring-size parsing and formatting, and the
// defaults every component (the BPF loader, the sensor, the ring model, the
// lab and the command line) shares. It is a leaf: it imports only the
// standard library, so both bpf and services/ringmodel can depend on it.
package ringspec
