package forward

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"
)

// The lock drainctl processes share in a namespace: a second taker waits
// until the first lets go, and a holder that dies lets go with it (the
// socket closes with its process; here, with Close).
func TestHostLockSerialises(t *testing.T) {
	name := fmt.Sprintf("@drainctl-test-lock-%d-%d", os.Getpid(), time.Now().UnixNano())
	a, b := &Host{lockName: name}, &Host{lockName: name}
	unlock, err := a.lock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := b.lock(ctx); err == nil {
		t.Fatal("a second taker got the lock while it was held")
	}
	got := make(chan time.Time, 1)
	go func() {
		u, err := b.lock(context.Background())
		if err != nil {
			t.Error(err)
		}
		got <- time.Now()
		u()
	}()
	time.Sleep(100 * time.Millisecond)
	released := time.Now()
	unlock()
	select {
	case at := <-got:
		if at.Before(released) {
			t.Fatal("the second taker got the lock before the first let go")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the second taker never got the lock")
	}
}
