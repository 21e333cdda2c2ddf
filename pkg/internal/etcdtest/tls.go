package etcdtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/drainctl/drainctl/pkg/internal/nstest"
)

// TLS are the files of a TLS-only etcd: its CA, and a client certificate
// and key it accepts (mode 0600).
type TLS struct {
	CA, Cert, Key string
}

// StartTLS runs one member on loopback that speaks only TLS and asks
// clients for a certificate signed by its CA, made here with openssl.
func StartTLS(t testing.TB) (*Cluster, TLS) {
	t.Helper()
	nstest.RequireCmd(t, "etcd", "openssl")
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	ossl := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("openssl", args...).CombinedOutput(); err != nil {
			t.Fatalf("openssl %v: %v\n%s", args, err, out)
		}
	}
	ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
		"-subj", "/CN=drainctl test CA", "-keyout", p("ca.key"), "-out", p("ca.pem"))
	for _, c := range []struct{ name, ext string }{
		{"server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth"},
		{"client", "extendedKeyUsage=clientAuth"},
	} {
		ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN="+c.name,
			"-keyout", p(c.name+".key"), "-out", p(c.name+".csr"))
		if err := os.WriteFile(p(c.name+".ext"), []byte(c.ext+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		ossl("x509", "-req", "-in", p(c.name+".csr"), "-CA", p("ca.pem"), "-CAkey", p("ca.key"), "-CAcreateserial",
			"-days", "1", "-extfile", p(c.name+".ext"), "-out", p(c.name+".pem"))
		os.Chmod(p(c.name+".key"), 0o600)
	}
	cp, pp := freePort(t), freePort(t)
	m := &Member{Name: "m0", Client: fmt.Sprintf("https://127.0.0.1:%d", cp), peer: fmt.Sprintf("http://127.0.0.1:%d", pp), dir: p("m0")}
	c := &Cluster{Members: []*Member{m}, initial: "m0=" + m.peer}
	m.extra = []string{"--cert-file", p("server.pem"), "--key-file", p("server.key"),
		"--trusted-ca-file", p("ca.pem"), "--client-cert-auth"}
	m.start(t, c.initial, "new")
	t.Cleanup(m.Kill)
	c.tls = &TLS{CA: p("ca.pem"), Cert: p("client.pem"), Key: p("client.key")}
	c.WaitHealthy(t)
	return c, *c.tls
}
