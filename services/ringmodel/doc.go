// Package ringmodel predicts what a kernel→user ring of a given size and
// layout would have dropped under a node's measured load, and recommends the
// smallest Falco-style bufSizePreset that keeps predicted missing metadata
// under a target.
//
// Why a model at all: the sensor counts every reserve attempt in the kernel,
// including the ones that fail, so the arrival curve it publishes (event.Sample
// series) is the true offered load even while the ring overflows. Replaying
// that curve through a model of another ring answers "what would a 16 MiB ring
// have dropped?" without re-running the workload.
//
// The pieces:
//   - Load / LoadFromSamples / LoadFromStats: the arrival curve in bins.
//   - Simulate: a fluid queue with the ring's exact byte capacity.
//   - Calibration / Learn / MissingPct: from lifecycle drops to missing
//     metadata, with the factor learned from the enricher's attribution.
//   - Recommend: replay every preset and layout, pick the smallest that meets
//     the target, and say so in one sentence (or say that no ring helps);
//     always with the answer in Falco's own layout (FalcoAnswer: one ring of
//     the preset per cpus_for_each_buffer CPUs, from the load's per-CPU
//     arrivals, Bin.CPU) and, given the syscall counts seen, what ring would
//     do without the dominant syscalls (WhatIf, FewerSyscalls).
//   - SimulatedLoad: a deterministic synthetic process flood for machines
//     without BPF (ringwise lab --source sim).
//
// The package is pure: no I/O, no package state, standard library only.
package ringmodel
