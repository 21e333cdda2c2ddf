// Package supervise runs an operator's command for `drainctl maintenance
// run` and reports how it ended: its exit status or the signal that
// killed it, and the end of its output. The command's output goes to a
// log file, never to a pipe drainctl holds, so that the command goes on
// if drainctl dies; the log is polled to show the output as it comes.
// Signals drainctl receives are relayed to the command's process group
// (a second one kills it), and a time limit stops it as systemd stops a
// unit: SIGTERM, then SIGKILL after a grace period.
package supervise

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// DefaultGrace is how long a command has after the time limit's SIGTERM
// before SIGKILL, when Options.Grace is 0.
const DefaultGrace = 10 * time.Second

// KeepOutput is how much of the output's end Result keeps: the reason of
// a failed run quotes its last line, and the agent records the end (it
// keeps 4 KiB of it in the history).
const KeepOutput = 16 << 10

// poll is how often the log is read to show what the command appended.
const poll = 100 * time.Millisecond

// Options is how Run supervises a command.
type Options struct {
	// Log gets the command's output (stdout and stderr). Only what is
	// appended from its current offset on is shown and kept: an appended
	// log's earlier runs are not this one.
	Log *os.File
	// Show gets the output as it comes, read back from Log (os.Stdout, or
	// os.Stderr when stdout is for JSON); nil shows nothing. Its write
	// errors are ignored: with the terminal gone (a lost SSH session) the
	// output still goes to the log.
	Show io.Writer
	// TTL is how long the command may run (0: no limit); then it gets
	// SIGTERM, and SIGKILL Grace later (0: DefaultGrace).
	TTL, Grace time.Duration
	// Signals are passed on to the command's process group: the first
	// one as it is, any further one as SIGKILL. nil relays none.
	Signals <-chan os.Signal
	// Notify, if not nil, is told what Run does to the command, before it
	// does it, from Run's goroutine.
	Notify func(Event)
}

// EventKind is what Run does to the command.
type EventKind int

const (
	// Relayed is a signal passed on to the command.
	Relayed EventKind = iota + 1
	// Killing is a second signal: the command gets SIGKILL.
	Killing
	// TimedOut is the TTL run out: the command gets SIGTERM.
	TimedOut
)

// Event is something Run does to the command, for the operator.
type Event struct {
	Kind EventKind
	// Signal is the signal received (Relayed, Killing) or sent (TimedOut).
	Signal os.Signal
}

// Result is how the command ended.
type Result struct {
	// ExitCode is its exit status; -1 if a signal killed it or it could
	// not be run or waited for.
	ExitCode int
	// Signal is the signal that killed it, as Go names it ("killed",
	// "terminated"); empty if it exited.
	Signal string
	// Output is the end of its output (KeepOutput bytes at most), or why
	// it could not be run or waited for.
	Output string
}

// Run runs args[0] with args[1:] (no shell) in its own process group with
// no input and its output to o.Log, and waits for it to end. The process
// group keeps the terminal's SIGINT and SIGHUP from reaching the command:
// drainctl alone decides what it gets (o.Signals).
func Run(args []string, o Options) Result {
	if len(args) == 0 {
		return Result{ExitCode: -1, Output: "no command"}
	}
	null, err := os.Open(os.DevNull)
	if err != nil {
		return Result{ExitCode: -1, Output: err.Error()}
	}
	defer null.Close()
	// The log is read through a descriptor of its own: o.Log's offset
	// is the command's.
	rf, err := os.Open(o.Log.Name())
	if err != nil {
		return Result{ExitCode: -1, Output: err.Error()}
	}
	defer rf.Close()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = null, o.Log, o.Log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start, _ := o.Log.Seek(0, io.SeekCurrent)
	if err := cmd.Start(); err != nil {
		return Result{ExitCode: -1, Output: err.Error()}
	}
	show := &logTail{f: rf, off: start, w: o.Show}
	err = o.wait(cmd, show)
	show.read()
	return outcome(err, string(show.last))
}

// wait relays signals, enforces the TTL and shows the log until the
// command ends, and returns its Wait's error.
func (o Options) wait(cmd *exec.Cmd, show *logTail) error {
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	group := -cmd.Process.Pid
	var limit, kill <-chan time.Time
	if o.TTL > 0 {
		limit = time.After(o.TTL)
	}
	signalled := 0
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			return err
		case s := <-o.Signals:
			// Once: the command decides how to stop (apt-get finishes
			// its dpkg step); twice: the operator means it.
			signalled++
			if signalled > 1 {
				o.notify(Event{Kind: Killing, Signal: s})
				syscall.Kill(group, syscall.SIGKILL)
				continue
			}
			o.notify(Event{Kind: Relayed, Signal: s})
			syscall.Kill(group, sysSignal(s))
		case <-limit:
			o.notify(Event{Kind: TimedOut, Signal: syscall.SIGTERM})
			syscall.Kill(group, syscall.SIGTERM)
			kill = time.After(o.grace())
		case <-kill:
			syscall.Kill(group, syscall.SIGKILL)
		case <-tick.C:
			// Polled, not piped: nothing here may block the command's
			// writes if drainctl stops reading.
			show.read()
		}
	}
}

func (o Options) notify(e Event) {
	if o.Notify != nil {
		o.Notify(e)
	}
}

func (o Options) grace() time.Duration {
	if o.Grace > 0 {
		return o.Grace
	}
	return DefaultGrace
}

// sysSignal is s as a signal to send; signal.Notify only delivers
// syscall.Signal, so the fallback is for a caller's own os.Signal.
func sysSignal(s os.Signal) syscall.Signal {
	if ss, ok := s.(syscall.Signal); ok {
		return ss
	}
	return syscall.SIGTERM
}

// outcome is how the command ended, from its Wait's error: its exit
// status, or the signal that killed it (its exit code is then -1, as the
// agent's record has it), or why it could not be waited for.
func outcome(err error, output string) Result {
	r := Result{Output: output}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.ExitCode = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			r.ExitCode, r.Signal = -1, ws.Signal().String()
		}
	default:
		r.ExitCode, r.Output = -1, err.Error()
	}
	return r
}

// logTail shows what the command appends to its log and keeps the end.
type logTail struct {
	f    *os.File  // the log, open for reading
	off  int64     // how far it has been shown
	w    io.Writer // where it is shown; nil: nowhere
	last []byte    // the end of the output, for the Result
}

// read shows what was appended since the last read.
func (t *logTail) read() {
	b, err := io.ReadAll(io.NewSectionReader(t.f, t.off, 1<<40))
	if err != nil || len(b) == 0 {
		return
	}
	t.off += int64(len(b))
	if t.w != nil {
		t.w.Write(b)
	}
	t.last = append(t.last, b...)
	if len(t.last) > KeepOutput {
		t.last = t.last[len(t.last)-KeepOutput:]
	}
}
