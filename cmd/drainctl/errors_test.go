package main

import (
	"fmt"
	"testing"

	"github.com/drainctl/drainctl/pkg/api"
	"github.com/drainctl/drainctl/pkg/api/apitype"
)

// A role's refusal (the agent's 403 forbidden) exits 17, apart from the
// socket's own refusal (8): "join a group" and "the socket is closed to
// you" are different fixes.
func TestForbiddenIsItsOwnExit(t *testing.T) {
	forbidden := fmt.Errorf("pool set: %w", &apitype.Error{Code: apitype.CodeForbidden, Msg: "root's only"})
	if got := exitCode(forbidden); got != exitForbidden || exitForbidden == exitPermission {
		t.Errorf("forbidden: exit %d, want %d", got, exitForbidden)
	}
	if got := exitCode(fmt.Errorf("dial: %w", api.ErrPermission)); got != exitPermission {
		t.Errorf("the socket's refusal: exit %d, want %d", got, exitPermission)
	}
}
