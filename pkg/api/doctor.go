package api

import (
	"encoding/json"
	"fmt"

	"github.com/drainctl/drainctl/pkg/api/apitype"
	"github.com/drainctl/drainctl/pkg/maintenance"
)

// For pkg/doctor, which judges the engine's types (it reads the pool from
// etcd itself, with maintenance.ReadPool, when no agent answers) and which
// another change owns: until it reads apitype's, these give it the
// agent's answers as the engine's types. They wrap a Client call,
// EngineStatus(c.Status(ctx)). The wire's bytes are the engine's
// (convert_test.go), so decoding them again loses nothing that crossed
// the socket.

// EngineStatus is the status the client received, as the engine's type.
func EngineStatus(st apitype.Status, err error) (maintenance.Status, error) {
	return asEngine[maintenance.Status](st, err)
}

// EnginePoolStatus is the pool's status the client received, as the
// engine's type.
func EnginePoolStatus(ps apitype.PoolStatus, err error) (maintenance.PoolStatus, error) {
	return asEngine[maintenance.PoolStatus](ps, err)
}

func asEngine[T any](v any, err error) (T, error) {
	var out T
	if err != nil {
		return out, err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return out, fmt.Errorf("encode %T: %w", v, err)
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return out, fmt.Errorf("decode %T: %w", out, err)
	}
	return out, nil
}
