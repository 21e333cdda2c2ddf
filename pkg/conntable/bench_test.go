package conntable

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/drainctl/drainctl/pkg/forward"
	"github.com/drainctl/drainctl/pkg/internal/forwardtest"
	"github.com/drainctl/drainctl/pkg/internal/nstest"
)

// BenchmarkConnTable counts and classifies the established connections of
// port 80 at 1,000, 10,000 and 50,000 connections, in one run, three ways:
//
//	table:   this package (sock_diag, kernel-filtered, plus conntrack)
//	procfs:  parsing /proc/net/tcp and /proc/net/tcp6
//	ss:      running `ss -Htn state established '( sport = :80 )'`
//
// Connections go to 127.0.0.1 inside a fresh namespace: "direct" ones to
// :80, "forwarded" ones to :81 through the REDIRECT. "mixed" adds 49,000
// connections to another port around 1,000 to :80, to show that the cost
// follows the matching connections. Figures: docs/benchmarks.md.
//
//	sudo go test -run '^$' -bench BenchmarkConnTable -benchtime 20x ./pkg/conntable
func BenchmarkConnTable(b *testing.B) {
	nstest.RequireCmd(b, "ss")
	for _, mix := range []string{"direct", "forwarded"} {
		b.Run(mix, func(b *testing.B) {
			l := newBenchLab(b)
			have := 0
			for _, n := range []int{1_000, 10_000, 50_000} {
				port := 80
				if mix == "forwarded" {
					port = 81
				}
				l.connect(b, port, n-have)
				have = n
				l.bench(b, fmt.Sprintf("conns=%d", n), n)
			}
		})
	}
	b.Run("mixed", func(b *testing.B) {
		l := newBenchLab(b)
		l.connect(b, 8080, 49_000)
		l.connect(b, 80, 1_000)
		l.bench(b, "conns=1000+49000-other-port", 1_000)
	})
}

// benchLab is a namespace with listeners on 127.0.0.1:80 and :8080 that
// never accept: connections complete the handshake and wait, ESTABLISHED,
// in the accept queue, where sock_diag, /proc and ss all see them. That
// way the server side costs this process no file descriptor; the client
// side lives in helper processes (holdConns). Both are needed because the
// open-file limit (20,000 here) cannot be raised without CAP_SYS_RESOURCE.
type benchLab struct {
	ns *nstest.NS
}

const perHelper = 15_000

func newBenchLab(b *testing.B) *benchLab {
	l := &benchLab{ns: nstest.New(b, "bench")}
	// 50,000 connections from one address need more than the default
	// 28,000 ephemeral ports, and a deep accept queue; both settings are
	// this namespace's own.
	l.ns.MustExec(b, "sysctl", "-qw", "net.ipv4.ip_local_port_range=1024 65000")
	l.ns.MustExec(b, "sysctl", "-qw", "net.core.somaxconn=65535")
	forwardtest.Apply(b, l.ns, fwd)
	for _, port := range []int{80, 8080} {
		var fd int
		err := l.ns.Do(func() (err error) {
			if fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0); err != nil {
				return err
			}
			if err = unix.Bind(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
				return err
			}
			return unix.Listen(fd, 65535)
		})
		if err != nil {
			b.Fatalf("listen :%d: %v", port, err)
		}
		b.Cleanup(func() { unix.Close(fd) })
	}
	return l
}

// connect opens n connections to 127.0.0.1:port from helper processes in
// the namespace, each holding up to perHelper of them until the benchmark
// ends (they are killed by PID).
func (l *benchLab) connect(b *testing.B, port, n int) {
	for n > 0 {
		k := min(n, perHelper)
		n -= k
		var cmd *exec.Cmd
		var out io.ReadCloser
		err := l.ns.Do(func() (err error) {
			cmd = exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), fmt.Sprintf("%s=127.0.0.1:%d/%d", holdEnv, port, k))
			cmd.Stderr = os.Stderr
			if out, err = cmd.StdoutPipe(); err != nil {
				return err
			}
			return cmd.Start()
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil || line != "ready\n" {
			b.Fatalf("helper holding %d connections to :%d: %q %v", k, port, line, err)
		}
	}
}

const holdEnv = "DRAINCTL_TEST_HOLD_CONNS"

// TestMain turns the test binary into the benchmark's helper process when
// DRAINCTL_TEST_HOLD_CONNS=ADDR/N is set: it opens N connections to ADDR,
// says "ready", and holds them until killed.
func TestMain(m *testing.M) {
	if spec := os.Getenv(holdEnv); spec != "" {
		holdConns(spec)
	}
	os.Exit(m.Run())
}

// held keeps the helper's connections reachable: a net.Conn the program
// no longer refers to may be closed by its finalizer when the GC runs.
var held []net.Conn

func holdConns(spec string) {
	addr, count, _ := strings.Cut(spec, "/")
	n, err := strconv.Atoi(count)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bad", holdEnv, spec)
		os.Exit(2)
	}
	held = make([]net.Conn, 0, n)
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			fmt.Fprintf(os.Stderr, "connection %d to %s: %v\n", i, addr, err)
			os.Exit(1)
		}
		held = append(held, c)
	}
	fmt.Println("ready")
	select {}
}

// bench runs the three ways of counting, each checking it found want.
func (l *benchLab) bench(b *testing.B, name string, want int) {
	// count-only: sock_diag, kernel-filtered, no classification: the
	// reference the target is set against.
	// table-cold: count and classify sockets never seen before (the first
	// poll of a drain); table-warm: the polls after it.
	for _, kind := range []string{"count-only", "table-cold", "table-warm"} {
		b.Run(name+"/"+kind, func(b *testing.B) {
			t, err := Open(Options{Forwards: []forward.Forward{fwd}, NetNS: l.ns.FD(), NoClassify: kind == "count-only"})
			if err != nil {
				b.Fatal(err)
			}
			defer t.Close()
			count := func() {
				n, fwded := 0, 0
				if err := t.Each(context.Background(), func(c *Conn) {
					n++
					if c.Path == PathForward {
						fwded++
					}
				}); err != nil {
					b.Fatal(err)
				}
				if n != want {
					b.Fatalf("counted %d, want %d", n, want)
				}
				b.ReportMetric(float64(fwded), "forwarded")
			}
			count() // warm the cache (and the sockets' buffers)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if kind == "table-cold" {
					b.StopTimer()
					clear(t.cache)
					b.StartTimer()
				}
				count()
			}
		})
	}
	b.Run(name+"/procfs", func(b *testing.B) {
		b.ReportAllocs()
		err := l.ns.Do(func() error {
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				n, err := countProc(80)
				if err != nil {
					return err
				}
				if n != want {
					return fmt.Errorf("counted %d, want %d", n, want)
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	})
	b.Run(name+"/ss", func(b *testing.B) {
		err := l.ns.Do(func() error {
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				out, err := exec.Command("ss", "-Htn", "state", "established", "( sport = :80 )").Output()
				if err != nil {
					return err
				}
				if n := bytes.Count(out, []byte("\n")); n != want {
					return fmt.Errorf("ss counted %d, want %d", n, want)
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	})
}

// countProc counts established sockets with local port port the way tools
// without netlink do: reading /proc/net/tcp{,6} of the calling thread's
// namespace line by line.
func countProc(port int) (int, error) {
	want := []byte(fmt.Sprintf(":%04X ", port))
	n := 0
	for _, f := range []string{"/proc/thread-self/net/tcp", "/proc/thread-self/net/tcp6"} {
		fh, err := os.Open(f)
		if err != nil {
			return 0, err
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fields := bytes.Fields(sc.Bytes())
			// sl local_address rem_address st ...: state 01 is ESTABLISHED
			if len(fields) > 3 && bytes.HasSuffix(append(fields[1], ' '), want) && bytes.Equal(fields[3], []byte("01")) {
				n++
			}
		}
		fh.Close()
		if err := sc.Err(); err != nil {
			return 0, err
		}
	}
	return n, nil
}
