package event

import (
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// MaxSnapshotProcs bounds a snapshot; pid_max is at most 2^22.
const MaxSnapshotProcs = 1 << 22

// EncodeSnapshot encodes s.
func EncodeSnapshot(s *Snapshot) ([]byte, error) {
	if s.Schema == 0 {
		s.Schema = SchemaVersion
	}
	return msgpack.Marshal(s)
}

// DecodeSnapshot decodes and validates a snapshot message.
func DecodeSnapshot(data []byte) (*Snapshot, error) {
	if len(data) > MaxBatchBytes {
		return nil, fmt.Errorf("decode snapshot: %d bytes: %w (max %d)", len(data), ErrOversized, MaxBatchBytes)
	}
	if err := checkMsgpackBounds(data); err != nil {
		return nil, fmt.Errorf("decode snapshot: %w: %v", ErrMalformed, err)
	}
	var s Snapshot
	if err := msgpack.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("decode snapshot: %w: %v", ErrMalformed, err)
	}
	if s.Schema != SchemaVersion {
		return nil, fmt.Errorf("decode snapshot: schema %d, this build reads %d: %w", s.Schema, SchemaVersion, ErrSchemaVersion)
	}
	if len(s.Procs) > MaxSnapshotProcs {
		return nil, fmt.Errorf("decode snapshot: %d processes: %w", len(s.Procs), ErrOversized)
	}
	if s.Parts == 0 {
		s.Part, s.Parts = 1, 1
	}
	if s.Part == 0 || s.Part > s.Parts || s.Parts > MaxSnapshotProcs {
		return nil, fmt.Errorf("decode snapshot: part %d of %d: %w", s.Part, s.Parts, ErrMalformed)
	}
	return &s, nil
}
